//! [`GenLock`]: Kamailio's `gen_lock_t`, with a guard instead of `lock_release`.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

#[cfg(feature = "lock-debug")]
use std::panic::Location;

use crate::liveness::Owner;
#[cfg(feature = "lock-debug")]
use crate::lock_hooks::{self, What};
use crate::raw::{Acquired, Futex, RawLock};

/// A lock that works across processes: put it in shared memory and every process that maps
/// the memory excludes the others.
///
/// All-zero bytes are an unlocked `GenLock`, so a lock inside a zeroed shared-memory
/// allocation needs no initialisation (Kamailio's `lock_init`) and no destruction
/// (`lock_destroy`). It sleeps in the kernel (a futex) after a short spin, and its word names
/// the owning thread, which [`owner`](GenLock::owner) reports.
///
/// Locking returns a [`GenLockGuard`]; the lock is released when the guard is dropped, on
/// every path out of the scope, so a forgotten `lock_release` on an error path cannot happen.
///
/// ```
/// use lockkit::{GenLock, ShmRegion};
///
/// let region = ShmRegion::anonymous(1 << 20)?;
/// let lock = region.alloc(GenLock::new())?; // lock_alloc + lock_init
/// {
///     let _guard = lock.lock(); // lock_get
///     assert!(lock.try_lock().is_none()); // lock_try fails while held
/// } // lock_release
/// assert!(lock.try_lock().is_some());
/// # Ok::<(), lockkit::Error>(())
/// ```
///
/// The lock is not recursive: locking it again from the thread that holds it panics rather
/// than waiting forever.
///
/// After `fork`, a lock held by some thread of the parent stays held in the child by a thread
/// that does not exist there; fork only from a thread that holds no lockkit lock, or let the
/// child leave those locks alone.
///
/// The algorithm is a type parameter, the futex by default: `GenLock<Spin>`,
/// `GenLock<PthreadMutex>` and `GenLock<PosixSem>` work the same way (see [`crate::raw`]).
#[repr(C)]
pub struct GenLock<R: RawLock = Futex> {
    raw: R,
    /// Where and since when the holder took it (feature `lock-debug`).
    #[cfg(feature = "lock-debug")]
    held_at: crate::lock_hooks::HeldAt,
}

/// A `GenLock`'s identity in layouts: with `lock-debug` it is larger (and a region shared
/// by programs built with and without the feature would be misread), so it is another type.
pub(crate) const LAYOUT_ID: &str = if cfg!(feature = "lock-debug") {
    "lockkit::GenLock/1+debug"
} else {
    "lockkit::GenLock/1"
};
/// The same for a lock set's padded lock.
pub(crate) const PADDED_LAYOUT_ID: &str = if cfg!(feature = "lock-debug") {
    "lockkit::PaddedLock/1+debug"
} else {
    "lockkit::PaddedLock/1"
};

impl<R: RawLock> Default for GenLock<R> {
    fn default() -> Self {
        Self::with_backend()
    }
}

impl GenLock {
    /// An unlocked futex lock (the same as zeroed memory). For another backend, use
    /// [`with_backend`](GenLock::with_backend): `GenLock::<Spin>::with_backend()`.
    pub const fn new() -> Self {
        Self::with_backend()
    }
}

impl<R: RawLock> GenLock<R> {
    /// An unlocked lock of backend `R` (the same as zeroed memory).
    pub const fn with_backend() -> Self {
        GenLock {
            raw: R::INIT,
            #[cfg(feature = "lock-debug")]
            held_at: crate::lock_hooks::HeldAt::new(),
        }
    }

    /// The algorithm underneath.
    pub fn raw(&self) -> &R {
        &self.raw
    }

    /// Takes the lock, waiting for as long as another thread or process holds it.
    ///
    /// # Panics
    /// If the calling thread already holds this lock.
    #[inline]
    #[track_caller]
    pub fn lock(&self) -> GenLockGuard<'_, R> {
        #[cfg(feature = "lock-debug")]
        let held = lock_hooks::before_wait(self.addr(), What::Lock, Location::caller());
        let how = self.raw.lock();
        #[cfg(feature = "lock-debug")]
        lock_hooks::acquired(self.addr(), What::Lock, Location::caller(), held);
        GenLockGuard::new(self, how)
    }

    #[cfg(feature = "lock-debug")]
    fn addr(&self) -> usize {
        self as *const Self as usize
    }

    /// Takes the lock if it is free (Kamailio's `lock_try`).
    #[inline]
    #[track_caller]
    pub fn try_lock(&self) -> Option<GenLockGuard<'_, R>> {
        let how = self.raw.try_lock()?;
        #[cfg(feature = "lock-debug")]
        lock_hooks::acquired(self.addr(), What::Lock, Location::caller(), None);
        Some(GenLockGuard::new(self, how))
    }

    /// Takes the lock, waiting at most `timeout`. Returns `None` at once if the calling
    /// thread holds it (waiting could only time out).
    #[track_caller]
    pub fn try_lock_for(&self, timeout: Duration) -> Option<GenLockGuard<'_, R>> {
        let how = self.raw.try_lock_for(timeout)?;
        #[cfg(feature = "lock-debug")]
        lock_hooks::acquired(self.addr(), What::Lock, Location::caller(), None);
        Some(GenLockGuard::new(self, how))
    }

    /// Releases the backend's kernel object (Kamailio's `lock_destroy`): needed only for
    /// [`SysvSem`](crate::raw::SysvSem), whose semaphore outlives every process otherwise; a
    /// no-op for the others.
    ///
    /// # Safety
    /// Nobody, in any process, uses the lock afterwards.
    pub unsafe fn destroy(&self) {
        // SAFETY: forwarded contract.
        unsafe { self.raw.destroy() }
    }

    /// Whether anyone holds the lock at this instant (a snapshot, for diagnostics).
    pub fn is_locked(&self) -> bool {
        self.raw.is_locked()
    }

    /// Whether a holder died holding the lock and nobody has marked it consistent since:
    /// the data it guards may be half-updated. The same news a guard gives through
    /// [`GenLockGuard::owner_died`], for code that holds the lock without a guard of its own
    /// (inside `locked!`, which lends only the data). Repair, then mark it consistent
    /// through a guard ([`GenLockGuard::mark_consistent`]).
    pub fn is_inconsistent(&self) -> bool {
        self.raw.is_inconsistent()
    }

    /// Releases the lock without a guard, for holders that track it themselves (the group
    /// lock's chain).
    ///
    /// # Safety
    /// The calling thread holds the lock and no guard for this acquisition will be dropped.
    pub(crate) unsafe fn force_unlock(&self) {
        #[cfg(feature = "lock-debug")]
        lock_hooks::released(self.addr());
        // SAFETY: per the contract.
        unsafe { self.raw.unlock() }
    }

    /// Who holds the lock at this instant, or `None` if nobody does.
    pub fn owner(&self) -> Option<Owner> {
        self.raw.owner()
    }
}

impl<R: RawLock> fmt::Debug for GenLock<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.owner() {
            Some(o) => write!(f, "GenLock {{ held by {o} }}"),
            None => f.write_str("GenLock { unlocked }"),
        }
    }
}

/// Proof that the current thread holds a [`GenLock`]; dropping it releases the lock.
///
/// Guards are `!Send`: the thread that took the lock releases it. A guard that `fork` copied
/// into a child holds nothing there: dropping the copy leaves the parent's lock alone (the
/// guard records the process's fork generation, which every fork child bumps).
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct GenLockGuard<'a, R: RawLock = Futex> {
    lock: &'a GenLock<R>,
    acquired: Acquired,
    fork_generation: u32,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: a shared reference to a guard only exposes `&GenLock`, which is Sync.
unsafe impl<R: RawLock> Sync for GenLockGuard<'_, R> {}

impl<'a, R: RawLock> GenLockGuard<'a, R> {
    #[inline]
    #[track_caller]
    fn new(lock: &'a GenLock<R>, acquired: Acquired) -> Self {
        #[cfg(feature = "lock-debug")]
        lock.held_at.record(std::panic::Location::caller());
        GenLockGuard {
            lock,
            acquired,
            fork_generation: crate::liveness::fork_generation(),
            _not_send: PhantomData,
        }
    }

    /// Whether the previous owner died holding the lock ([`Acquired::OwnerDied`], from
    /// backends that detect it): the guarded data may be half-updated. Repair it, then call
    /// [`mark_consistent`](GenLockGuard::mark_consistent).
    pub fn owner_died(guard: &Self) -> bool {
        guard.acquired == Acquired::OwnerDied || guard.lock.raw.is_inconsistent()
    }

    /// Declares the data repaired after an owner death, so the lock can be used again (a
    /// robust backend refuses to be taken again otherwise). Does nothing if no owner died.
    pub fn mark_consistent(guard: &mut Self) {
        if guard.acquired == Acquired::OwnerDied || guard.lock.raw.is_inconsistent() {
            // SAFETY: the guard holds the lock.
            unsafe { guard.lock.raw.mark_consistent() };
            guard.acquired = Acquired::Clean;
        }
    }

    /// Releases the lock now (Kamailio's `lock_release`), the same as dropping the guard.
    pub fn unlock(guard: Self) {
        drop(guard);
    }

    /// The lock this guard holds.
    pub fn lock(guard: &Self) -> &'a GenLock<R> {
        guard.lock
    }

    /// A condition variable's wait: runs `prepare` holding the lock, releases the lock while
    /// `sleep` runs, and takes it again before returning, also when `sleep` panics (the
    /// guard's drop must find its lock held). The guard then tells what the new acquisition
    /// found: [`owner_died`](GenLockGuard::owner_died) is true if a holder died meanwhile.
    ///
    /// # Panics
    /// Before `prepare`, if `fork` copied the guard into this process: the lock is held by
    /// the parent's thread, and releasing it here would rob that thread.
    #[track_caller]
    pub(crate) fn release_while<P, U>(
        guard: &mut Self,
        prepare: impl FnOnce() -> P,
        sleep: impl FnOnce(P) -> U,
    ) -> U {
        assert!(
            guard.fork_generation == crate::liveness::fork_generation(),
            "ShmCondvar::wait: this guard was copied into this process by fork; the lock is \
             held by the parent's thread, not by this process, so it cannot be released here"
        );
        let prepared = prepare();
        // SAFETY: the guard holds the lock in this process (checked above) and is not
        // dropped while it is released: it is given back a fresh acquisition below, or by
        // `relock` when `sleep` unwinds.
        unsafe { guard.lock.force_unlock() };
        let relock = scopeguard::guard(&mut *guard, |g| Self::relock(g));
        let out = sleep(prepared);
        Self::relock(scopeguard::ScopeGuard::into_inner(relock));
        out
    }

    #[track_caller]
    fn relock(guard: &mut Self) {
        let fresh = guard.lock.lock();
        // The released acquisition has nothing left to release: forgetting it is the point.
        std::mem::forget(std::mem::replace(guard, fresh));
    }
}

impl<R: RawLock> Drop for GenLockGuard<'_, R> {
    #[inline]
    fn drop(&mut self) {
        if self.fork_generation != crate::liveness::fork_generation() {
            // A copy `fork` made: the parent's thread holds the lock, not this process.
            return;
        }
        #[cfg(feature = "lock-debug")]
        lock_hooks::released(self.lock.addr());
        // SAFETY: a guard exists only while its thread holds the lock (it is created right
        // after a successful acquisition, is !Send, is dropped once, and was not copied into
        // this process by fork: checked above); `acquired` is what that acquisition said,
        // or `Clean` once `mark_consistent` cleared the flag.
        unsafe {
            if self.acquired == Acquired::Clean {
                self.lock.raw.unlock_clean()
            } else {
                self.lock.raw.unlock()
            }
        }
    }
}

impl<R: RawLock> fmt::Debug for GenLockGuard<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GenLockGuard").finish_non_exhaustive()
    }
}
