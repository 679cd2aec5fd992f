//! [`Lockable`]: what `locked!` accepts, one trait over every lock kind and the handles that
//! lead to one.

use std::sync::Arc;
use std::time::Duration;

use crate::grp::{GrpGuard, GrpLock};
use crate::raw::RawLock;
use crate::{
    GenLock, GenLockGuard, GenRwLock, RecLock, RecLockGuard, RwLock, ShmBox, ShmMutex,
    ShmMutexGuard,
};

/// A lock that hands out a guard: [`GenLock`], [`ShmMutex`], [`GrpLock`], and a
/// [`ShmBox`], `Arc`, `Box` or reference leading to one. This is what
/// [`locked!`](crate::locked) takes.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a lock that `locked!` can take",
    label = "not a lockkit lock",
    note = "locked! takes a GenLock, a ShmMutex, a GrpLock, a lock-set entry (`set[i]`), or a \
            ShmBox, Arc, Box or reference leading to one",
    note = "an RwLock (and a field lock that is a GenRwLock) is taken as a reader or a writer: \
            locked!(read r = rwlock => ..) or locked!(write w = rwlock => ..)"
)]
pub trait Lockable {
    /// The guard that holds this lock.
    type Guard<'a>
    where
        Self: 'a;

    /// Takes the lock.
    #[track_caller]
    fn lock_guard(&self) -> Self::Guard<'_>;

    /// Takes the lock if it is free.
    #[track_caller]
    fn try_lock_guard(&self) -> Option<Self::Guard<'_>>;
}

/// A [`Lockable`] that can wait for a bounded time: what `locked!(try_for(timeout) ..)`
/// takes.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be waited for with a timeout",
    label = "no timed lock",
    note = "locked!(try_for(timeout) ..) takes a GenLock, a ShmMutex, a RecLock, or a ShmBox, \
            Arc, Box or reference leading to one; use locked!(try ..) for the others"
)]
pub trait TimedLockable: Lockable {
    /// Takes the lock, waiting at most `timeout`.
    #[track_caller]
    fn try_lock_guard_for(&self, timeout: Duration) -> Option<Self::Guard<'_>>;
}

/// An [`RwLock`], or a handle leading to one: what `locked!(read ..)` and
/// `locked!(write ..)` take.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a reader-writer lock",
    label = "not an RwLock",
    note = "locked!(read ..) and locked!(write ..) take an RwLock, or a ShmBox, Arc, Box or \
            reference leading to one; for other locks drop `read`/`write`"
)]
pub trait RwLockable {
    /// The data the lock guards.
    type Data;
    /// The lock.
    fn rw(&self) -> &RwLock<Self::Data>;
}

impl<T> RwLockable for RwLock<T> {
    type Data = T;
    #[inline]
    fn rw(&self) -> &RwLock<T> {
        self
    }
}

impl RwLockable for GenRwLock {
    type Data = ();
    #[inline]
    fn rw(&self) -> &RwLock<()> {
        self
    }
}

impl Lockable for RecLock {
    type Guard<'a> = RecLockGuard<'a>;
    #[inline]
    fn lock_guard(&self) -> RecLockGuard<'_> {
        self.lock()
    }
    #[inline]
    fn try_lock_guard(&self) -> Option<RecLockGuard<'_>> {
        self.try_lock()
    }
}

impl<R: RawLock> TimedLockable for GenLock<R> {
    #[inline]
    fn try_lock_guard_for(&self, timeout: Duration) -> Option<GenLockGuard<'_, R>> {
        self.try_lock_for(timeout)
    }
}

impl<T, R: RawLock> TimedLockable for ShmMutex<T, R> {
    #[inline]
    fn try_lock_guard_for(&self, timeout: Duration) -> Option<ShmMutexGuard<'_, T, R>> {
        self.try_lock_for(timeout)
    }
}

impl TimedLockable for RecLock {
    #[inline]
    fn try_lock_guard_for(&self, timeout: Duration) -> Option<RecLockGuard<'_>> {
        self.try_lock_for(timeout)
    }
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

macro_rules! forward_handles {
    ($([$($bound:tt)*] $ty:ty),*) => {
        $(
            impl<L: TimedLockable + $($bound)*> TimedLockable for $ty {
                #[inline]
                fn try_lock_guard_for(&self, timeout: Duration) -> Option<L::Guard<'_>> {
                    (**self).try_lock_guard_for(timeout)
                }
            }
            impl<L: RwLockable + $($bound)*> RwLockable for $ty {
                type Data = L::Data;
                #[inline]
                fn rw(&self) -> &RwLock<L::Data> {
                    (**self).rw()
                }
            }
        )*
    };
}

forward_handles!([?Sized] &L, [?Sized] Arc<L>, [?Sized] Box<L>, [Sized] ShmBox<L>);

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
