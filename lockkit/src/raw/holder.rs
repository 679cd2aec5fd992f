//! [`Holder`]: the thread id of a lock's holder, kept beside a lock that does not record it
//! itself (a semaphore has no owner; a pthread mutex keeps its owner where lockkit should not
//! look). It lets those backends refuse a relock by the holder instead of hanging, refuse a
//! release by a thread that does not hold the lock (a guard `fork` copied into a child), and
//! answer `is_locked` without probing the lock.
//!
//! Written by the holder right after it acquired the lock and cleared right before it
//! releases it, so it is exact for the holder's own questions and a snapshot for others'.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use crate::sys;

/// The holding thread's id, or 0.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct Holder(AtomicU32);

impl Holder {
    pub(crate) const fn new() -> Self {
        Holder(AtomicU32::new(0))
    }

    /// Records the calling thread as the holder (call right after acquiring).
    #[inline]
    pub(crate) fn set(&self) {
        self.0.store(sys::tid(), Relaxed);
    }

    /// Forgets the holder (call right before releasing).
    #[inline]
    pub(crate) fn clear(&self) {
        self.0.store(0, Relaxed);
    }

    /// Whether the calling thread holds the lock (its id confirmed with the kernel, so a raw
    /// `clone(2)` child is not taken for its parent).
    #[inline]
    pub(crate) fn is_me(&self) -> bool {
        let me = sys::tid();
        self.0.load(Relaxed) == me && sys::tid_confirmed(me)
    }

    /// Whether the holder recorded is the calling thread by its cached id, without asking
    /// the kernel: for `unlock`, which must stay cheap, and where a stale cache is harmless
    /// (the same stale id was recorded when this thread took the lock).
    #[inline]
    pub(crate) fn is_me_cached(&self) -> bool {
        self.0.load(Relaxed) == sys::tid()
    }

    /// The holder's thread id at this instant.
    pub(crate) fn get(&self) -> Option<u32> {
        match self.0.load(Relaxed) {
            0 => None,
            tid => Some(tid),
        }
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
