//! [`Holder`]: who holds a lock that does not record it itself (a semaphore has no owner; a
//! pthread mutex keeps its owner where lockkit should not look), and whether a holder died
//! holding it. It lets those backends refuse a relock by the holder instead of hanging,
//! refuse a release by a thread that does not hold the lock (a guard `fork` copied into a
//! child), answer `is_locked` without probing the lock, and tell every acquirer that a
//! previous holder died until somebody marks the lock consistent.
//!
//! The owner word holds the holder's owner id (as the futex word does: `crate::liveness`),
//! written by the holder right after it acquired the lock and cleared right before it
//! releases it, so it is exact for the holder's own questions and a snapshot for others'.
//! A non-zero owner found by a thread that has just acquired the lock therefore means the
//! previous holder never released it: it died, and the kernel (a robust mutex's
//! `EOWNERDEAD`) or a take-over gave the lock on.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use super::Acquired;
use crate::liveness;

/// The holding thread's owner id (or 0), and the inconsistent flag.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct Holder {
    owner: AtomicU32,
    inconsistent: AtomicU32,
}

impl Holder {
    pub(crate) const fn new() -> Self {
        Holder {
            owner: AtomicU32::new(0),
            inconsistent: AtomicU32::new(0),
        }
    }

    /// The calling thread's owner id for this lock. Ask before acquiring: it can panic (a
    /// region where this process cannot take ids), and a panic after the acquisition would
    /// lose the lock.
    #[inline]
    pub(crate) fn me(&self) -> u32 {
        liveness::id_at(self as *const Self as usize)
    }

    /// Records the calling thread as the holder (call right after acquiring) and says how
    /// the acquisition went: a previous holder that never cleared the word died holding the
    /// lock, and the flag stays up until `mark_consistent`.
    #[inline]
    pub(crate) fn set(&self, me: u32) -> Acquired {
        let before = self.owner.swap(me, Relaxed);
        if before != 0 {
            self.mark_died();
        }
        self.acquired()
    }

    /// Records that a holder died holding the lock.
    #[cold]
    pub(crate) fn mark_died(&self) {
        self.inconsistent.store(1, Relaxed);
    }

    /// How an acquisition goes while the flag is as it is.
    #[inline]
    pub(crate) fn acquired(&self) -> Acquired {
        if self.inconsistent.load(Relaxed) != 0 {
            Acquired::OwnerDied
        } else {
            Acquired::Clean
        }
    }

    /// Clears the inconsistent flag (the holder repaired the data).
    pub(crate) fn mark_consistent(&self) {
        self.inconsistent.store(0, Relaxed);
    }

    /// Forgets the holder (call right before releasing).
    #[inline]
    pub(crate) fn clear(&self) {
        self.owner.store(0, Relaxed);
    }

    /// Whether the calling thread holds the lock.
    #[inline]
    pub(crate) fn is_me(&self) -> bool {
        self.owner.load(Relaxed) == self.me()
    }

    /// The same as [`is_me`](Holder::is_me) (ids are never reused, so there is no stale
    /// cache to confirm any more); kept apart for `unlock`'s callers.
    #[inline]
    pub(crate) fn is_me_cached(&self) -> bool {
        self.is_me()
    }

    /// The holder at this instant, for diagnostics.
    pub(crate) fn owner(&self) -> Option<crate::liveness::Owner> {
        self.get()
            .map(|id| liveness::describe(self as *const Self as usize, id))
    }

    /// The holder's owner id at this instant.
    pub(crate) fn get(&self) -> Option<u32> {
        match self.owner.load(Relaxed) {
            0 => None,
            id => Some(id),
        }
    }

    /// If the kernel says the recorded holder's process is gone, makes the calling thread the
    /// holder in its place (one thread wins); true for the winner, who now owns the dead
    /// holder's acquisition.
    pub(crate) fn take_over_from_dead(&self) -> bool {
        let Some(dead) = self.get() else {
            return false;
        };
        if dead == self.me() || !liveness::holder_gone(self as *const Self as usize, dead) {
            return false;
        }
        let won = self
            .owner
            .compare_exchange(dead, self.me(), Relaxed, Relaxed)
            .is_ok();
        if won {
            self.mark_died();
        }
        won
    }
}

/// The panic for a relock by the holder.
#[cold]
#[track_caller]
pub(crate) fn relock(backend: &str) -> ! {
    panic!(
        "{backend}: this thread already holds the lock; it is not recursive, so waiting for \
         it would never end"
    )
}
