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
unsafe impl ShmSafe for RecLock {}
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

    fn enter_again(&self) -> Option<RecLockGuard<'_>> {
        if self.raw.is_held_by_current_thread() {
            self.depth.fetch_add(1, Relaxed);
            Some(RecLockGuard::new(self))
        } else {
            None
        }
    }

    fn entered(&self) -> RecLockGuard<'_> {
        self.depth.store(1, Relaxed);
        RecLockGuard::new(self)
    }

    /// Takes the lock, or takes it once more if this thread holds it.
    pub fn lock(&self) -> RecLockGuard<'_> {
        if let Some(g) = self.enter_again() {
            return g;
        }
        self.raw.lock();
        self.entered()
    }

    /// Takes the lock if it is free or this thread holds it.
    pub fn try_lock(&self) -> Option<RecLockGuard<'_>> {
        self.enter_again()
            .or_else(|| self.raw.try_lock().then(|| self.entered()))
    }

    /// Takes the lock, waiting at most `timeout` for another holder.
    pub fn try_lock_for(&self, timeout: Duration) -> Option<RecLockGuard<'_>> {
        self.enter_again()
            .or_else(|| self.raw.try_lock_for(timeout).then(|| self.entered()))
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
        self.raw.owner().map(|(pid, tid)| Owner { pid, tid })
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
    _not_send: PhantomData<*const ()>,
}

impl<'a> RecLockGuard<'a> {
    /// A guard for a level the calling thread holds (also how the group lock gives back a
    /// level it took for its chain and forgot).
    pub(crate) fn new(lock: &'a RecLock) -> Self {
        RecLockGuard {
            lock,
            _not_send: PhantomData,
        }
    }
}

impl Drop for RecLockGuard<'_> {
    fn drop(&mut self) {
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
