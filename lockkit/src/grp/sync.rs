//! What the group lock is built on: std's primitives and lockkit's futex, or, when
//! model-checking (`--cfg loom`), loom's, so that `loom` explores the group lock's own
//! protocol (see `model.rs`) and checks every access to holder-only state.
//!
//! - [`OwnLock`]: the group's own lock (the futex; under loom a spin lock on a loom atomic
//!   that yields to the model's scheduler).
//! - [`HolderCell`]: state that only the thread holding a lock touches: writes in short
//!   accesses that call nothing, reads that may call out as long as nothing can write the
//!   cell meanwhile (an `UnsafeCell`; under loom, loom's tracked cell, which fails the model
//!   on any access not ordered by that lock, and on a write nested in another access).
//! - [`tid`] / [`pid`]: who is calling (under loom a model thread has no kernel thread of its
//!   own, so it gets a number of its own).

#[cfg(loom)]
pub(crate) use loom::sync::{
    atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicU8, Ordering},
    Mutex, MutexGuard,
};
#[cfg(not(loom))]
pub(crate) use std::sync::{
    atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicU8, Ordering},
    Mutex, MutexGuard,
};

/// The group's own lock.
#[cfg(not(loom))]
pub(crate) type OwnLock = crate::raw::Futex;

/// The calling thread's identity as a group's holder (never 0): its owner id for process
/// memory, never reused, so a thread is never taken for one that exited holding the group (a
/// leaked guard).
#[cfg(not(loom))]
#[inline]
pub(crate) fn tid() -> u32 {
    crate::liveness::private_id()
}

/// The calling process's id.
#[cfg(not(loom))]
#[inline]
pub(crate) fn pid() -> u32 {
    crate::sys::pid()
}

/// Locks `m`, ignoring poisoning: every critical section on these mutexes leaves the data
/// consistent at every point where it could panic.
pub(crate) fn lock_mutex<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(not(loom))]
mod cell {
    /// A value only the holder of some lock touches. A write (`with_mut`) is short and
    /// calls nothing that can reach the cell; a read (`with`) may call out, provided
    /// nothing it calls can write the cell.
    pub(crate) struct HolderCell<T>(std::cell::UnsafeCell<T>);

    impl<T> HolderCell<T> {
        pub(crate) const fn new(value: T) -> Self {
            HolderCell(std::cell::UnsafeCell::new(value))
        }

        /// # Safety
        /// The calling thread holds the lock that guards this cell, and nothing `f` does
        /// writes this cell.
        #[inline(always)]
        pub(crate) unsafe fn with<R>(&self, f: impl FnOnce(&T) -> R) -> R {
            // SAFETY: per the contract, nobody writes the cell while `f` runs.
            f(unsafe { &*self.0.get() })
        }

        /// # Safety
        /// The calling thread holds the lock that guards this cell, and nothing `f` does
        /// reaches this cell.
        #[inline(always)]
        pub(crate) unsafe fn with_mut<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
            // SAFETY: per the contract, this is the only access while `f` runs.
            f(unsafe { &mut *self.0.get() })
        }
    }
}

#[cfg(loom)]
mod cell {
    /// As the non-loom `HolderCell`, on loom's cell: an access not ordered after the
    /// previous holder's (by the lock's release/acquire), or nested in another, fails the
    /// model.
    pub(crate) struct HolderCell<T>(loom::cell::UnsafeCell<T>);

    impl<T> HolderCell<T> {
        pub(crate) fn new(value: T) -> Self {
            HolderCell(loom::cell::UnsafeCell::new(value))
        }

        /// # Safety
        /// As for the non-loom `with`.
        pub(crate) unsafe fn with<R>(&self, f: impl FnOnce(&T) -> R) -> R {
            // SAFETY: loom checks the contract.
            self.0.with(|p| f(unsafe { &*p }))
        }

        /// # Safety
        /// As for the non-loom `with_mut`.
        pub(crate) unsafe fn with_mut<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
            // SAFETY: loom checks the contract.
            self.0.with_mut(|p| f(unsafe { &mut *p }))
        }
    }
}

pub(crate) use cell::HolderCell;

#[cfg(loom)]
mod model_only {
    use std::time::Duration;

    use loom::sync::atomic::{AtomicU32, Ordering::*};

    /// A spin lock for the model: 0 free, else the holder's model thread id. It has the
    /// futex's interface, including its panic when a thread locks it twice.
    #[derive(Debug, Default)]
    pub(crate) struct OwnLock {
        word: AtomicU32,
    }

    impl OwnLock {
        pub(crate) fn new() -> Self {
            OwnLock {
                word: AtomicU32::new(0),
            }
        }
        pub(crate) fn lock(&self) {
            let me = tid();
            assert!(
                self.word.load(Relaxed) != me,
                "this thread already holds the lock"
            );
            while !self.try_lock() {
                loom::thread::yield_now();
            }
        }
        pub(crate) fn try_lock(&self) -> bool {
            self.word
                .compare_exchange(0, tid(), Acquire, Relaxed)
                .is_ok()
        }
        /// No time in the model: one more attempt after yielding.
        pub(crate) fn try_lock_for(&self, _: Duration) -> bool {
            self.try_lock() || {
                loom::thread::yield_now();
                self.try_lock()
            }
        }
        /// # Safety
        /// The calling thread holds the lock.
        pub(crate) unsafe fn unlock(&self) {
            self.word.store(0, Release);
        }
    }

    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

    loom::thread_local! {
        static TID: u32 = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn tid() -> u32 {
        TID.with(|t| *t)
    }

    pub(crate) fn pid() -> u32 {
        std::process::id()
    }
}

#[cfg(loom)]
pub(crate) use model_only::{pid, tid, OwnLock};
