//! [`PthreadMutex`]: glibc's process-shared, robust `pthread_mutex_t`, set up in place.
//!
//! Robust means the kernel and glibc notice when the owner dies holding it: the next
//! acquirer gets `EOWNERDEAD`, which lockkit passes on as [`Acquired::OwnerDied`] rather than
//! swallowing it. lockkit makes glibc's mutex consistent at once (glibc would make a mutex
//! released unrepaired unusable for everyone, for ever) and keeps its own flag instead, as
//! the other backends do: every acquirer is told `OwnerDied` until one calls
//! `mark_consistent`.
//!
//! The mutex is of the error-checking kind, so a relock by its holder is `EDEADLK` (a panic
//! from `lock`, `None` from the `try_*` forms) rather than a hang. Timed waits measure
//! `CLOCK_MONOTONIC` (`pthread_mutex_clocklock`), so setting the wall clock neither
//! stretches nor cuts them. A [`Holder`] word beside the mutex answers `is_locked` without
//! probing (a probe would consume an `EOWNERDEAD`) and refuses a release by a thread that
//! does not hold the mutex (a guard copied into a `fork` child).
//!
//! Invariants kept here: the `pthread_mutex_t` is initialised (process-shared, robust,
//! error-checking) in place exactly once, by `InitOnce`, before any other call touches it;
//! it is never moved after that (the lock's contract).

use std::cell::UnsafeCell;
use std::time::Duration;

use super::holder::Holder;
use super::init_once::InitOnce;
use super::{Acquired, RawLock};
use crate::deadline::Deadline;

extern "C" {
    // glibc 2.30 and later; not bound by the libc crate.
    fn pthread_mutex_clocklock(
        mutex: *mut libc::pthread_mutex_t,
        clock: libc::clockid_t,
        abstime: *const libc::timespec,
    ) -> libc::c_int;
}

/// A process-shared robust glibc mutex. Zero bytes are a not-yet-initialised mutex, set up
/// on first use.
#[repr(C)]
pub struct PthreadMutex {
    init: InitOnce,
    holder: Holder,
    mutex: UnsafeCell<libc::pthread_mutex_t>,
}

// SAFETY: a process-shared pthread mutex is made to be used by many threads and processes
// at once; the UnsafeCell only gives glibc the pointer it needs.
unsafe impl Sync for PthreadMutex {}
// SAFETY: moving an unused (zero) mutex between threads is moving bytes.
unsafe impl Send for PthreadMutex {}

fn check(what: &str, r: libc::c_int) {
    assert!(
        r == 0,
        "PthreadMutex: {what} failed: {}",
        std::io::Error::from_raw_os_error(r)
    );
}

impl PthreadMutex {
    #[inline]
    fn ptr(&self) -> *mut libc::pthread_mutex_t {
        self.init.ensure(|| {
            // SAFETY: we are the one initialiser (InitOnce); `attr` lives on this stack and
            // is destroyed after use; the mutex memory is valid and not yet in use.
            unsafe {
                let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
                check(
                    "pthread_mutexattr_init",
                    libc::pthread_mutexattr_init(&mut attr),
                );
                check(
                    "setpshared",
                    libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED),
                );
                check(
                    "setrobust",
                    libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST),
                );
                check(
                    "settype",
                    libc::pthread_mutexattr_settype(&mut attr, libc::PTHREAD_MUTEX_ERRORCHECK),
                );
                check(
                    "pthread_mutex_init",
                    libc::pthread_mutex_init(self.mutex.get(), &attr),
                );
                libc::pthread_mutexattr_destroy(&mut attr);
            }
        });
        self.mutex.get()
    }

    /// Maps a lock call's result; `timed` says whether `EDEADLK` (a relock) means "no"
    /// rather than a panic.
    #[inline]
    #[track_caller]
    fn outcome(&self, r: libc::c_int, what: &str, timed: bool) -> Option<Acquired> {
        let how = if r == 0 {
            Some(Acquired::Clean)
        } else {
            Self::slow_outcome(r, what, timed)
        };
        if how == Some(Acquired::OwnerDied) {
            self.owner_died();
        }
        how.map(|_| self.holder.set())
    }

    /// After `EOWNERDEAD`: glibc's mutex is made consistent at once (released unrepaired,
    /// it would become unusable for every process, for ever), and lockkit's own flag
    /// carries the news to every acquirer until `mark_consistent`, as for the other
    /// backends.
    #[cold]
    fn owner_died(&self) {
        // SAFETY: this thread holds the mutex (it just got EOWNERDEAD from a lock call).
        check("pthread_mutex_consistent", unsafe {
            libc::pthread_mutex_consistent(self.mutex.get())
        });
        self.holder.mark_died();
    }

    #[cold]
    #[track_caller]
    fn slow_outcome(r: libc::c_int, what: &str, timed: bool) -> Option<Acquired> {
        match r {
            0 => Some(Acquired::Clean),
            libc::EOWNERDEAD => Some(Acquired::OwnerDied),
            libc::EBUSY | libc::ETIMEDOUT => None,
            libc::EDEADLK if timed => None,
            libc::ENOTRECOVERABLE => panic!(
                "PthreadMutex: the lock is not recoverable: an owner died holding it and the \
                 next holder released it without calling mark_consistent"
            ),
            libc::EDEADLK => super::holder::relock("PthreadMutex::lock"),
            e => panic!(
                "PthreadMutex::{what} failed: {}",
                std::io::Error::from_raw_os_error(e)
            ),
        }
    }
}

// SAFETY: glibc's robust process-shared mutex provides mutual exclusion between processes;
// zero bytes are INIT (InitOnce sets the mutex up in place on first use).
unsafe impl RawLock for PthreadMutex {
    // SAFETY (of the zeroed value): InitOnce zero is "not initialised", and zero bytes are a
    // valid bit pattern for pthread_mutex_t (it is plain integers).
    const INIT: Self = PthreadMutex {
        init: InitOnce::new(),
        holder: Holder::new(),
        mutex: UnsafeCell::new(unsafe { std::mem::zeroed() }),
    };
    const NAME: &'static str = "pthread-robust";

    #[inline]
    #[track_caller]
    fn lock(&self) -> Acquired {
        // SAFETY: an initialised process-shared mutex (ptr() ensures it).
        let r = unsafe { libc::pthread_mutex_lock(self.ptr()) };
        self.outcome(r, "lock", false)
            .expect("pthread_mutex_lock does not return EBUSY")
    }
    #[inline]
    fn try_lock(&self) -> Option<Acquired> {
        // SAFETY: as in `lock`.
        let r = unsafe { libc::pthread_mutex_trylock(self.ptr()) };
        self.outcome(r, "try_lock", true)
    }
    #[inline]
    fn try_lock_for(&self, timeout: Duration) -> Option<Acquired> {
        let mutex = self.ptr();
        let Some(at) = Deadline::after(timeout).monotonic_timespec() else {
            // No representable deadline: wait as long as it takes, but a relock still
            // answers "no" at once.
            // SAFETY: as in `lock`.
            let r = unsafe { libc::pthread_mutex_lock(mutex) };
            return self.outcome(r, "try_lock_for", true);
        };
        // SAFETY: as in `lock`; `at` is a valid timespec on this stack and CLOCK_MONOTONIC a
        // clock glibc accepts here.
        let r = unsafe { pthread_mutex_clocklock(mutex, libc::CLOCK_MONOTONIC, &at) };
        self.outcome(r, "try_lock_for", true)
    }
    #[inline]
    unsafe fn unlock(&self) {
        if !self.holder.is_me_cached() {
            // A guard copied into a fork child: the parent's thread holds the mutex.
            return;
        }
        self.holder.clear();
        // SAFETY: the caller holds the mutex (contract), so it is initialised.
        check("pthread_mutex_unlock", unsafe {
            libc::pthread_mutex_unlock(self.mutex.get())
        });
    }
    #[inline]
    fn is_locked(&self) -> bool {
        // Never a probe: taking the mutex would consume an EOWNERDEAD, and releasing it
        // unrepaired would make it unrecoverable for everyone.
        self.holder.get().is_some()
    }
    fn owner(&self) -> Option<crate::Owner> {
        self.holder.owner()
    }
    #[inline]
    unsafe fn mark_consistent(&self) {
        self.holder.mark_consistent();
    }
    fn is_inconsistent(&self) -> bool {
        self.holder.acquired() == Acquired::OwnerDied
    }
}
