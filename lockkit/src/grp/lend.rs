//! Data guarded by a group's chained locks, lent by the group's guard (issue 22.6).
//!
//! While a thread holds a group it holds every chained lock, so those locks' own `lock()`
//! cannot lend their data (a `GenLock` panics: the thread already holds it; `try_lock` says
//! busy). [`GrpGuard::lend`](super::GrpGuard::lend) lends it instead, after checking that the
//! group's chain (or the chain of a group it chains) holds the lock.
//!
//! Exclusion: the data is reached only by the thread that holds the lock; on that thread a
//! registry of what is lent now (addresses, thread-local) refuses a second lend of the same
//! data, whichever guard (of this group, a recursive level, or a chained group) asks. A
//! [`GrpLent`] borrows the guard that lent it, so the group (and with it the lock) stays held
//! while the data is lent.

use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use super::ChainLock;
use crate::raw::RawLock;
use crate::{ShmMutex, ShmSafe};

/// A lock that guards data a group's guard can lend: a [`ShmMutex`], a
/// [`FieldLock`](super::FieldLock) of one, or a handle leading to one.
///
/// # Safety
/// `data_ptr` points at the data that the lock `chain_id` names guards, the same data every
/// time, valid while `self` is.
pub unsafe trait GuardsData: ChainLock {
    /// The data.
    type Data;
    /// Where the data is.
    fn data_ptr(&self) -> *mut Self::Data;
}

// SAFETY: the mutex's own data, guarded by its raw lock, which its chain_id names.
unsafe impl<T: ShmSafe, R: RawLock> GuardsData for ShmMutex<T, R> {
    type Data = T;
    fn data_ptr(&self) -> *mut T {
        ShmMutex::data_ptr(self)
    }
}

// SAFETY: forwards to the one lock the FieldLock names (see `FieldLock::lock`), whose
// chain_id it forwards too.
unsafe impl<O: ?Sized + Send + Sync, L: GuardsData + ?Sized> GuardsData for super::FieldLock<O, L> {
    type Data = L::Data;
    fn data_ptr(&self) -> *mut L::Data {
        self.lock().data_ptr()
    }
}

macro_rules! forward_guards_data {
    ($([$($bound:tt)*] $ty:ty),*) => {
        $(
            // SAFETY: forwards to the lock behind the handle, whose chain_id the handle's
            // ChainLock forwards too.
            unsafe impl<L: GuardsData + $($bound)*> GuardsData for $ty {
                type Data = L::Data;
                fn data_ptr(&self) -> *mut L::Data {
                    (**self).data_ptr()
                }
            }
        )*
    };
}

forward_guards_data!(
    [?Sized] &L,
    [?Sized] std::sync::Arc<L>,
    [?Sized] Box<L>,
    [Sized] crate::ShmBox<L>
);

thread_local! {
    /// The data lent on this thread now: its address, and the `chain_id` of its lock.
    static LENT: RefCell<Vec<(usize, usize)>> = const { RefCell::new(Vec::new()) };
}

/// Data lent by a group's guard (see [`GrpGuard::lend`](super::GrpGuard::lend)): derefs to
/// it, and gives it back when dropped.
#[must_use = "the data is given back as soon as this is dropped"]
pub struct GrpLent<'g, T> {
    data: *mut T,
    /// Borrows the guard; `*mut T` makes it `!Send` and `!Sync`, as the guard is.
    _guard: PhantomData<&'g mut T>,
}

impl<'g, T> GrpLent<'g, T> {
    /// Lends `data`, which the calling thread holds the lock `id` of for `'g`.
    ///
    /// # Safety
    /// The calling thread holds the lock that guards `data` for all of `'g`, and reaches the
    /// data only through lends made here.
    ///
    /// # Panics
    /// If the data is lent on this thread already.
    #[track_caller]
    pub(crate) unsafe fn new(id: usize, data: *mut T) -> Self {
        let at = data as usize;
        let fresh = LENT.with(|l| {
            let mut l = l.borrow_mut();
            if l.iter().any(|&(a, _)| a == at) {
                return false;
            }
            l.push((at, id));
            true
        });
        if !fresh {
            panic!("GrpGuard::lend: this data is lent already (a lend of it is still alive)");
        }
        GrpLent {
            data,
            _guard: PhantomData,
        }
    }
}

/// The `chain_id`s of the locks whose data is lent on this thread now.
pub(crate) fn lent_locks() -> Vec<usize> {
    LENT.with(|l| l.borrow().iter().map(|&(_, id)| id).collect())
}

impl<T> Drop for GrpLent<'_, T> {
    fn drop(&mut self) {
        let at = self.data as usize;
        // `try_with`: during thread teardown the registry may be gone, and then so is
        // every lend.
        let _ = LENT.try_with(|l| {
            let mut l = l.borrow_mut();
            if let Some(i) = l.iter().position(|&(a, _)| a == at) {
                l.swap_remove(i);
            }
        });
    }
}

impl<T> Deref for GrpLent<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the lock guarding the data is held for 'g and this is the only lend of it
        // on the only thread that can reach it (see `new`).
        unsafe { &*self.data }
    }
}

impl<T> DerefMut for GrpLent<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only access through the lend.
        unsafe { &mut *self.data }
    }
}

impl<T: fmt::Debug> fmt::Debug for GrpLent<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}
