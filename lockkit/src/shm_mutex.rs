//! [`ShmMutex`]: a [`GenLock`] and the data it guards, side by side in shared memory.

use std::cell::UnsafeCell;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use crate::{GenLock, GenLockGuard, Owner, ShmSafe, ShmZeroable};

/// A lock together with the data it guards; the data is reachable only through a guard.
///
/// `#[repr(C)]`: the lock word comes first, then the data, so the layout is the same in every
/// process. Zero bytes are an unlocked mutex around zeroed data when `T` allows it.
///
/// ```
/// use lockkit::{ShmMutex, ShmRegion};
///
/// let region = ShmRegion::anonymous(1 << 20)?;
/// let calls = region.alloc(ShmMutex::new([0u64; 4]))?;
/// calls.lock()[2] += 1;
/// assert_eq!(calls.lock()[2], 1);
/// # Ok::<(), lockkit::Error>(())
/// ```
#[repr(C)]
#[derive(Default)]
pub struct ShmMutex<T> {
    lock: GenLock,
    data: UnsafeCell<T>,
}

// SAFETY: the data is reached only through a guard, which exists only while its thread holds
// the lock, so at most one thread (in any process) touches it at a time.
unsafe impl<T: ShmSafe> Sync for ShmMutex<T> {}
// SAFETY: moving the mutex moves the data; `T: ShmSafe` carries no process-local state.
unsafe impl<T: ShmSafe> Send for ShmMutex<T> {}
// SAFETY: a GenLock and a ShmSafe value, laid out with repr(C): no process-local pointers.
unsafe impl<T: ShmSafe> ShmSafe for ShmMutex<T> {}
// SAFETY: zero bytes are an unlocked GenLock and, by `T: ShmZeroable`, a valid T.
unsafe impl<T: ShmZeroable> ShmZeroable for ShmMutex<T> {}

impl<T> ShmMutex<T> {
    /// An unlocked mutex holding `value`.
    pub const fn new(value: T) -> Self {
        ShmMutex {
            lock: GenLock::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// Takes the lock and returns a guard to the data.
    pub fn lock(&self) -> ShmMutexGuard<'_, T> {
        self.guard(self.lock.lock())
    }

    /// Takes the lock if it is free.
    pub fn try_lock(&self) -> Option<ShmMutexGuard<'_, T>> {
        self.lock.try_lock().map(|g| self.guard(g))
    }

    /// Takes the lock, waiting at most `timeout`.
    pub fn try_lock_for(&self, timeout: Duration) -> Option<ShmMutexGuard<'_, T>> {
        self.lock.try_lock_for(timeout).map(|g| self.guard(g))
    }

    /// Whether anyone holds the lock at this instant.
    pub fn is_locked(&self) -> bool {
        self.lock.is_locked()
    }

    /// Who holds the lock at this instant.
    pub fn owner(&self) -> Option<Owner> {
        self.lock.owner()
    }

    /// The data, without locking: `&mut self` proves nobody else in this process can reach
    /// it.
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// The data, consuming the mutex.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }

    /// The lock alone, for chaining it to a group lock.
    pub(crate) fn raw_lock(&self) -> &GenLock {
        &self.lock
    }

    fn guard<'a>(&'a self, lock: GenLockGuard<'a>) -> ShmMutexGuard<'a, T> {
        ShmMutexGuard { mutex: self, lock }
    }
}

impl<T> fmt::Debug for ShmMutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShmMutex")
            .field("lock", &self.lock)
            .finish_non_exhaustive()
    }
}

/// Access to the data of a locked [`ShmMutex`]; dropping it releases the lock.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ShmMutexGuard<'a, T> {
    mutex: &'a ShmMutex<T>,
    lock: GenLockGuard<'a>,
}

impl<T> ShmMutexGuard<'_, T> {
    /// Releases the lock now, the same as dropping the guard.
    pub fn unlock(guard: Self) {
        drop(guard);
    }
}

impl<T> Deref for ShmMutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock, so no other thread or process accesses the data.
        unsafe { &*self.mutex.data.get() }
    }
}

impl<T> DerefMut for ShmMutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only reference via the guard.
        unsafe { &mut *self.mutex.data.get() }
    }
}

impl<T: fmt::Debug> fmt::Debug for ShmMutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let _ = &self.lock;
        fmt::Debug::fmt(&**self, f)
    }
}
