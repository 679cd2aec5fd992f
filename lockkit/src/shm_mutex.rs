//! [`ShmMutex`]: a [`GenLock`] and the data it guards, side by side in shared memory.

use std::cell::UnsafeCell;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use crate::raw::{Futex, RawLock};
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
pub struct ShmMutex<T, R: RawLock = Futex> {
    lock: GenLock<R>,
    data: UnsafeCell<T>,
}

impl<T: Default, R: RawLock> Default for ShmMutex<T, R> {
    fn default() -> Self {
        Self::with_backend(T::default())
    }
}

// SAFETY: the data is reached only through a guard, which exists only while its thread holds
// the lock, so at most one thread (in any process) touches it at a time.
unsafe impl<T: ShmSafe, R: RawLock> Sync for ShmMutex<T, R> {}
// SAFETY: moving the mutex moves the data; `T: ShmSafe` carries no process-local state.
unsafe impl<T: ShmSafe, R: RawLock> Send for ShmMutex<T, R> {}
// SAFETY: a GenLock and a ShmSafe value, laid out with repr(C): no process-local pointers.
unsafe impl<T: ShmSafe, R: RawLock> ShmSafe for ShmMutex<T, R> {
    const LAYOUT: &'static crate::layout::TypeLayout = &crate::layout::TypeLayout::of_fields::<Self>(
        "ShmMutex",
        &[
            crate::layout::FieldLayout {
                name: "lock",
                offset: std::mem::offset_of!(Self, lock),
                layout: GenLock::<R>::LAYOUT,
            },
            crate::layout::FieldLayout {
                name: "data",
                offset: std::mem::offset_of!(Self, data),
                layout: T::LAYOUT,
            },
            crate::layout::FieldLayout::interior_mutable(std::mem::offset_of!(Self, data)),
        ],
    );
}
// SAFETY: zero bytes are an unlocked GenLock and, by `T: ShmZeroable`, a valid T.
unsafe impl<T: ShmZeroable, R: RawLock> ShmZeroable for ShmMutex<T, R> {}

impl<T> ShmMutex<T> {
    /// An unlocked futex mutex holding `value`. For another backend, use
    /// [`with_backend`](ShmMutex::with_backend).
    pub const fn new(value: T) -> Self {
        Self::with_backend(value)
    }
}

impl<T, R: RawLock> ShmMutex<T, R> {
    /// An unlocked mutex of backend `R` holding `value`.
    pub const fn with_backend(value: T) -> Self {
        ShmMutex {
            lock: GenLock::with_backend(),
            data: UnsafeCell::new(value),
        }
    }

    /// Takes the lock and returns a guard to the data.
    #[track_caller]
    pub fn lock(&self) -> ShmMutexGuard<'_, T, R> {
        self.guard(self.lock.lock())
    }

    /// Takes the lock if it is free.
    #[track_caller]
    pub fn try_lock(&self) -> Option<ShmMutexGuard<'_, T, R>> {
        self.lock.try_lock().map(|g| self.guard(g))
    }

    /// Takes the lock, waiting at most `timeout`.
    #[track_caller]
    pub fn try_lock_for(&self, timeout: Duration) -> Option<ShmMutexGuard<'_, T, R>> {
        self.lock.try_lock_for(timeout).map(|g| self.guard(g))
    }

    /// Releases the lock's kernel object (see [`GenLock::destroy`]).
    ///
    /// # Safety
    /// Nobody, in any process, uses the mutex afterwards.
    pub unsafe fn destroy(&self) {
        // SAFETY: forwarded contract.
        unsafe { self.lock.destroy() }
    }

    /// Whether anyone holds the lock at this instant.
    pub fn is_locked(&self) -> bool {
        self.lock.is_locked()
    }

    /// Whether a holder died holding the lock and nobody has marked it consistent since
    /// ([`GenLock::is_inconsistent`]): inside `locked!`, which lends only the data, this is
    /// how the block learns that the data may be half-updated.
    pub fn is_inconsistent(&self) -> bool {
        self.lock.is_inconsistent()
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
    pub(crate) fn raw_lock(&self) -> &GenLock<R> {
        &self.lock
    }

    /// The data, for holders that track the lock themselves (`locked!` over several locks).
    pub(crate) fn data_ptr(&self) -> *mut T {
        self.data.get()
    }

    fn guard<'a>(&'a self, lock: GenLockGuard<'a, R>) -> ShmMutexGuard<'a, T, R> {
        ShmMutexGuard { mutex: self, lock }
    }
}

impl<T, R: RawLock> fmt::Debug for ShmMutex<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShmMutex")
            .field("lock", &self.lock)
            .finish_non_exhaustive()
    }
}

/// Access to the data of a locked [`ShmMutex`]; dropping it releases the lock.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ShmMutexGuard<'a, T, R: RawLock = Futex> {
    mutex: &'a ShmMutex<T, R>,
    lock: GenLockGuard<'a, R>,
}

impl<'a, T, R: RawLock> ShmMutexGuard<'a, T, R> {
    /// Releases the lock now, the same as dropping the guard.
    pub fn unlock(guard: Self) {
        drop(guard);
    }

    /// Whether the previous owner died holding the lock (see
    /// [`GenLockGuard::owner_died`]).
    pub fn owner_died(guard: &Self) -> bool {
        GenLockGuard::owner_died(&guard.lock)
    }

    /// Declares the data repaired after an owner death (see
    /// [`GenLockGuard::mark_consistent`]).
    pub fn mark_consistent(guard: &mut Self) {
        GenLockGuard::mark_consistent(&mut guard.lock)
    }

    /// The lock's own guard, for a condition variable's wait.
    pub(crate) fn lock_guard(guard: &mut Self) -> &mut GenLockGuard<'a, R> {
        &mut guard.lock
    }
}

impl<T, R: RawLock> Deref for ShmMutexGuard<'_, T, R> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock, so no other thread or process accesses the data.
        unsafe { &*self.mutex.data.get() }
    }
}

impl<T, R: RawLock> DerefMut for ShmMutexGuard<'_, T, R> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only reference via the guard.
        unsafe { &mut *self.mutex.data.get() }
    }
}

impl<T: fmt::Debug, R: RawLock> fmt::Debug for ShmMutexGuard<'_, T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let _ = &self.lock;
        fmt::Debug::fmt(&**self, f)
    }
}
