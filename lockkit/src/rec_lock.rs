//! [`RecLock`]: a recursive process-shared lock (Kamailio's `rec_lock_t`), owned by a thread.

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::time::Duration;

use crate::raw::Futex;
use crate::{Owner, ShmSafe, ShmZeroable};

/// A lock its holder may take again; it is released when every guard is gone.
///
/// Kamailio's `rec_lock_t` counts ownership per *process* (two threads of one process both
/// count as the owner) and never checks who releases. Here the owner is a *thread* (pid and
/// tid): it may lock again, a depth counts how often, and every other thread, in this process
/// or another, waits. Zero bytes are an unlocked lock.
///
/// The holder is recognised by its owner id (see [`crate::raw`]), which is never handed out
/// twice: no other thread, of this process or another, and no thread that later reuses a
/// dead holder's thread id, is ever taken for the holder. A process made by a raw `clone(2)`
/// runs no fork handlers and must call [`crate::refresh_thread_ids`] first.
///
/// ```
/// use lockkit::RecLock;
///
/// let lock = RecLock::new();
/// let outer = lock.lock();
/// let inner = lock.lock(); // the same thread: no deadlock
/// assert_eq!(lock.depth(), 2);
/// drop(inner);
/// drop(outer); // released here
/// assert!(!lock.is_locked());
/// ```
#[repr(C)]
#[derive(Default)]
pub struct RecLock {
    raw: Futex,
    /// How many guards the holder has; touched only by the holder.
    depth: AtomicU32,
}

// SAFETY: a futex word and a counter.
unsafe impl ShmSafe for RecLock {
    const LAYOUT: &'static crate::layout::TypeLayout =
        &crate::layout::TypeLayout::opaque::<Self>("lockkit::RecLock/1", "");
}
// SAFETY: zero bytes are an unlocked futex and depth 0.
unsafe impl ShmZeroable for RecLock {}

impl RecLock {
    /// An unlocked lock (the same as zeroed memory).
    pub const fn new() -> Self {
        RecLock {
            raw: Futex::new(),
            depth: AtomicU32::new(0),
        }
    }

    /// Another level for the thread that holds the lock: `None` if it does not hold it,
    /// `Some(Err(()))` if the depth is at its limit.
    fn enter_again(&self) -> Option<Result<RecLockGuard<'_>, ()>> {
        if !self.raw.is_held_by_current_thread() {
            return None;
        }
        // Only the holder writes the depth, so a load and a store cannot race; checked so
        // that 2^32 leaked guards cannot wrap it to 0 and release the lock under a live one.
        let d = self.depth.load(Relaxed);
        Some(match d.checked_add(1) {
            Some(next) => {
                self.depth.store(next, Relaxed);
                Ok(RecLockGuard::new(self))
            }
            None => Err(()),
        })
    }

    fn entered(&self) -> RecLockGuard<'_> {
        self.depth.store(1, Relaxed);
        RecLockGuard::new(self)
    }

    /// Takes the lock, or takes it once more if this thread holds it.
    ///
    /// # Panics
    /// If this thread already holds `u32::MAX` levels (leaked guards, in practice).
    #[track_caller]
    pub fn lock(&self) -> RecLockGuard<'_> {
        match self.enter_again() {
            Some(Ok(g)) => g,
            Some(Err(())) => panic!(
                "RecLock::lock: this thread holds u32::MAX levels already (are guards being \
                 leaked?); the lock stays held at that depth"
            ),
            None => {
                self.raw.lock();
                self.entered()
            }
        }
    }

    /// Takes the lock if it is free or this thread holds it (below the depth limit).
    pub fn try_lock(&self) -> Option<RecLockGuard<'_>> {
        match self.enter_again() {
            Some(level) => level.ok(),
            None => self.raw.try_lock().then(|| self.entered()),
        }
    }

    /// Takes the lock, waiting at most `timeout` for another holder.
    pub fn try_lock_for(&self, timeout: Duration) -> Option<RecLockGuard<'_>> {
        match self.enter_again() {
            Some(level) => level.ok(),
            None => self.raw.try_lock_for(timeout).then(|| self.entered()),
        }
    }

    /// How many guards the calling thread holds (0 if it does not hold the lock).
    pub fn depth(&self) -> u32 {
        if self.raw.is_held_by_current_thread() {
            self.depth.load(Relaxed)
        } else {
            0
        }
    }

    /// Whether anyone holds the lock at this instant.
    pub fn is_locked(&self) -> bool {
        self.raw.is_locked()
    }

    /// Who holds the lock at this instant.
    pub fn owner(&self) -> Option<Owner> {
        self.raw.owner()
    }

    /// Whether a holder's process died holding the lock and nobody has marked it consistent
    /// since (a snapshot): for code that holds the lock through `locked!` and has no guard
    /// to ask.
    ///
    /// ```
    /// let lock = lockkit::RecLock::new();
    /// assert!(!lock.is_inconsistent());
    /// ```
    pub fn is_inconsistent(&self) -> bool {
        self.raw.is_inconsistent()
    }

    /// The futex underneath, for the lock report.
    pub(crate) fn raw_futex(&self) -> &Futex {
        &self.raw
    }
}

impl RecLock {
    /// Releases one level without a guard, for holders that track it themselves (a group
    /// lock's chain).
    ///
    /// # Safety
    /// The calling thread holds a level taken through `lock` whose guard was forgotten.
    pub(crate) unsafe fn force_unlock_level(&self) {
        if self.depth.fetch_sub(1, Relaxed) == 1 {
            // SAFETY: per the contract, this thread holds the lock; that was its last level.
            unsafe { self.raw.unlock() };
        }
    }
}

impl fmt::Debug for RecLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecLock")
            .field("owner", &self.owner())
            .finish()
    }
}

/// One level of a [`RecLock`] held by this thread; the last one dropped releases the lock.
#[must_use = "the level is released as soon as the guard is dropped"]
pub struct RecLockGuard<'a> {
    lock: &'a RecLock,
    fork_generation: u32,
    _not_send: PhantomData<*const ()>,
}

impl<'a> RecLockGuard<'a> {
    /// A guard for a level the calling thread holds (also how the group lock gives back a
    /// level it took for its chain and forgot).
    pub(crate) fn new(lock: &'a RecLock) -> Self {
        RecLockGuard {
            lock,
            fork_generation: crate::liveness::fork_generation(),
            _not_send: PhantomData,
        }
    }

    /// Whether a previous holder died holding the lock and nobody has marked it consistent
    /// since: the data it guards may be half-updated. Repair it, then call
    /// [`mark_consistent`](RecLockGuard::mark_consistent); until then every acquisition is
    /// told again.
    pub fn owner_died(guard: &Self) -> bool {
        guard.lock.raw.is_inconsistent()
    }

    /// Declares the data repaired after an owner's death.
    pub fn mark_consistent(guard: &mut Self) {
        // SAFETY: the guard's thread holds the lock.
        unsafe { guard.lock.raw.mark_consistent() }
    }
}

impl Drop for RecLockGuard<'_> {
    fn drop(&mut self) {
        if self.fork_generation != crate::liveness::fork_generation() {
            // A copy `fork` made: the parent's thread holds the lock and its depth.
            return;
        }
        if self.lock.depth.fetch_sub(1, Relaxed) == 1 {
            // SAFETY: this thread holds the lock (guards are !Send) and this was its last
            // level.
            unsafe { self.lock.raw.unlock() };
        }
    }
}

impl fmt::Debug for RecLockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecLockGuard").finish_non_exhaustive()
    }
}
