//! [`PthreadMutex`]: glibc's process-shared, robust `pthread_mutex_t`, set up in place.
//!
//! Robust means the kernel and glibc notice when the owner dies holding it: the next
//! acquirer gets `EOWNERDEAD`, which lockkit passes on as [`Acquired::OwnerDied`] rather than
//! swallowing it. That acquirer repairs the data and calls `mark_consistent`; if it releases
//! without doing so, the mutex becomes permanently unusable (`ENOTRECOVERABLE`), and lockkit
//! panics on the next lock with a message that says so, instead of hanging.
//!
//! Invariants kept here: the `pthread_mutex_t` is initialised (process-shared, robust) in
//! place exactly once, by `InitOnce`, before any other call touches it; it is never moved
//! after that (the lock's contract).

use std::cell::UnsafeCell;
use std::time::Duration;

use super::init_once::InitOnce;
use super::{Acquired, RawLock};

/// A process-shared robust glibc mutex. Zero bytes are a not-yet-initialised mutex, set up
/// on first use.
#[repr(C)]
pub struct PthreadMutex {
    init: InitOnce,
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
                    "pthread_mutex_init",
                    libc::pthread_mutex_init(self.mutex.get(), &attr),
                );
                libc::pthread_mutexattr_destroy(&mut attr);
            }
        });
        self.mutex.get()
    }

    #[inline]
    fn outcome(r: libc::c_int, what: &str) -> Option<Acquired> {
        if r == 0 {
            return Some(Acquired::Clean);
        }
        Self::slow_outcome(r, what)
    }

    #[cold]
    fn slow_outcome(r: libc::c_int, what: &str) -> Option<Acquired> {
        match r {
            0 => Some(Acquired::Clean),
            libc::EOWNERDEAD => Some(Acquired::OwnerDied),
            libc::EBUSY | libc::ETIMEDOUT => None,
            libc::ENOTRECOVERABLE => panic!(
                "PthreadMutex: the lock is not recoverable: an owner died holding it and the \
                 next holder released it without calling mark_consistent"
            ),
            libc::EDEADLK => panic!("PthreadMutex::{what}: this thread already holds the lock"),
            e => panic!(
                "PthreadMutex::{what} failed: {}",
                std::io::Error::from_raw_os_error(e)
            ),
        }
    }
}

/// `now + timeout` on CLOCK_REALTIME, the clock `pthread_mutex_timedlock` and
/// `sem_timedwait` measure against.
pub(super) fn realtime_deadline(timeout: Duration) -> libc::timespec {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a valid out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut now) };
    let nanos = now.tv_nsec as u64 + u64::from(timeout.subsec_nanos());
    let secs = (now.tv_sec as u64)
        .saturating_add(timeout.as_secs())
        .saturating_add(nanos / 1_000_000_000)
        .min(i64::MAX as u64);
    libc::timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: (nanos % 1_000_000_000) as libc::c_long,
    }
}

// SAFETY: glibc's robust process-shared mutex provides mutual exclusion between processes;
// zero bytes are INIT (InitOnce sets the mutex up in place on first use).
unsafe impl RawLock for PthreadMutex {
    // SAFETY (of the zeroed value): InitOnce zero is "not initialised", and zero bytes are a
    // valid bit pattern for pthread_mutex_t (it is plain integers).
    const INIT: Self = PthreadMutex {
        init: InitOnce::new(),
        mutex: UnsafeCell::new(unsafe { std::mem::zeroed() }),
    };
    const NAME: &'static str = "pthread-robust";

    #[inline]
    fn lock(&self) -> Acquired {
        // SAFETY: an initialised process-shared mutex (ptr() ensures it).
        let r = unsafe { libc::pthread_mutex_lock(self.ptr()) };
        Self::outcome(r, "lock").expect("pthread_mutex_lock does not return EBUSY")
    }
    #[inline]
    fn try_lock(&self) -> Option<Acquired> {
        // SAFETY: as in `lock`.
        Self::outcome(
            unsafe { libc::pthread_mutex_trylock(self.ptr()) },
            "try_lock",
        )
    }
    #[inline]
    fn try_lock_for(&self, timeout: Duration) -> Option<Acquired> {
        let deadline = realtime_deadline(timeout);
        // SAFETY: as in `lock`; `deadline` is a valid timespec on this stack.
        Self::outcome(
            unsafe { libc::pthread_mutex_timedlock(self.ptr(), &deadline) },
            "try_lock_for",
        )
    }
    #[inline]
    unsafe fn unlock(&self) {
        // SAFETY: the caller holds the mutex (contract), so it is initialised.
        check("pthread_mutex_unlock", unsafe {
            libc::pthread_mutex_unlock(self.mutex.get())
        });
    }
    #[inline]
    fn is_locked(&self) -> bool {
        // A probe: take it if free and give it straight back.
        match self.try_lock() {
            None => true,
            Some(_) => {
                // SAFETY: taken just above by this thread. (An OwnerDied probe is released
                // unrepaired, as a lock() caller that ignored it would.)
                unsafe { self.unlock() };
                false
            }
        }
    }
    #[inline]
    unsafe fn mark_consistent(&self) {
        // SAFETY: the caller holds the mutex (contract).
        check("pthread_mutex_consistent", unsafe {
            libc::pthread_mutex_consistent(self.mutex.get())
        });
    }
}
