//! [`Lockable`]: what `locked!` accepts, one trait over every lock kind and the handles that
//! lead to one.

use std::sync::Arc;

use crate::grp::{GrpGuard, GrpLock};
use crate::raw::RawLock;
use crate::{GenLock, GenLockGuard, ShmBox, ShmMutex, ShmMutexGuard};

/// A lock that hands out a guard: [`GenLock`], [`ShmMutex`], [`GrpLock`], and a
/// [`ShmBox`], `Arc`, `Box` or reference leading to one. This is what
/// [`locked!`](crate::locked) takes.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a lock that `locked!` can take",
    label = "not a lockkit lock",
    note = "locked! takes a GenLock, a ShmMutex, a GrpLock, a lock-set entry (`set[i]`), or a \
            ShmBox, Arc, Box or reference leading to one"
)]
pub trait Lockable {
    /// The guard that holds this lock.
    type Guard<'a>
    where
        Self: 'a;

    /// Takes the lock.
    fn lock_guard(&self) -> Self::Guard<'_>;

    /// Takes the lock if it is free.
    fn try_lock_guard(&self) -> Option<Self::Guard<'_>>;
}

impl<R: RawLock> Lockable for GenLock<R> {
    type Guard<'a>
        = GenLockGuard<'a, R>
    where
        R: 'a;
    #[inline]
    fn lock_guard(&self) -> GenLockGuard<'_, R> {
        self.lock()
    }
    #[inline]
    fn try_lock_guard(&self) -> Option<GenLockGuard<'_, R>> {
        self.try_lock()
    }
}

impl<T, R: RawLock> Lockable for ShmMutex<T, R> {
    type Guard<'a>
        = ShmMutexGuard<'a, T, R>
    where
        T: 'a,
        R: 'a;
    #[inline]
    fn lock_guard(&self) -> ShmMutexGuard<'_, T, R> {
        self.lock()
    }
    #[inline]
    fn try_lock_guard(&self) -> Option<ShmMutexGuard<'_, T, R>> {
        self.try_lock()
    }
}

impl Lockable for GrpLock {
    type Guard<'a> = GrpGuard<'a>;
    #[inline]
    fn lock_guard(&self) -> GrpGuard<'_> {
        self.lock()
    }
    #[inline]
    fn try_lock_guard(&self) -> Option<GrpGuard<'_>> {
        self.try_lock()
    }
}

macro_rules! forward_lockable {
    ($([$($bound:tt)*] $ty:ty),*) => {
        $(
            impl<L: Lockable + $($bound)*> Lockable for $ty {
                type Guard<'a> = L::Guard<'a> where Self: 'a;
                #[inline]
                fn lock_guard(&self) -> L::Guard<'_> {
                    (**self).lock_guard()
                }
                #[inline]
                fn try_lock_guard(&self) -> Option<L::Guard<'_>> {
                    (**self).try_lock_guard()
                }
            }
        )*
    };
}

forward_lockable!([?Sized] &L, [?Sized] Arc<L>, [?Sized] Box<L>, [Sized] ShmBox<L>);

impl<T: crate::grp::GrpMember> Lockable for crate::grp::Member<T> {
    type Guard<'a>
        = crate::grp::MemberGuard<'a, T>
    where
        T: 'a;
    #[inline]
    fn lock_guard(&self) -> crate::grp::MemberGuard<'_, T> {
        self.lock()
    }
    #[inline]
    fn try_lock_guard(&self) -> Option<crate::grp::MemberGuard<'_, T>> {
        self.try_lock()
    }
}
