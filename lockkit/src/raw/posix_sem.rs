//! [`PosixSem`]: a process-shared POSIX semaphore (`sem_init(.., 1, 1)`) used as a lock,
//! set up in place on first use.
//!
//! A semaphore has no owner: if a process dies holding it, it stays taken. A [`Holder`]
//! word beside it records the holding thread, so a relock by the holder panics (or returns
//! `None` from the timed form) instead of hanging, and a thread that does not hold it (a
//! guard copied into a `fork` child) does not post it. `sem_wait` and `sem_clockwait` return
//! `EINTR` when a signal handler runs (without `SA_RESTART` they are not restarted); lockkit
//! retries. Timed waits measure `CLOCK_MONOTONIC` (`sem_clockwait`), so setting the wall
//! clock neither stretches nor cuts them.
//!
//! Invariants kept here: the `sem_t` is initialised in place exactly once, by `InitOnce`,
//! before any other call touches it, and is never moved after that.

use std::cell::UnsafeCell;
use std::time::Duration;

use super::holder::{relock, Holder};
use super::init_once::InitOnce;
use super::{Acquired, RawLock};
use crate::deadline::Deadline;
use crate::sys::errno;

extern "C" {
    // glibc 2.30 and later; not bound by the libc crate.
    fn sem_clockwait(
        sem: *mut libc::sem_t,
        clock: libc::clockid_t,
        abstime: *const libc::timespec,
    ) -> libc::c_int;
}

/// A process-shared semaphore with one token. Zero bytes are a not-yet-initialised
/// semaphore, set up on first use.
#[repr(C)]
pub struct PosixSem {
    init: InitOnce,
    holder: Holder,
    sem: UnsafeCell<libc::sem_t>,
}

// SAFETY: a process-shared semaphore is made for concurrent use by threads and processes.
unsafe impl Sync for PosixSem {}
// SAFETY: moving an unused (zero) semaphore between threads is moving bytes.
unsafe impl Send for PosixSem {}

impl PosixSem {
    #[inline]
    fn ptr(&self) -> *mut libc::sem_t {
        self.init.ensure(|| {
            // SAFETY: we are the one initialiser (InitOnce); the memory is valid and unused.
            let r = unsafe { libc::sem_init(self.sem.get(), 1, 1) };
            assert!(
                r == 0,
                "sem_init failed: {}",
                std::io::Error::last_os_error()
            );
        });
        self.sem.get()
    }
}

// SAFETY: a semaphore with one token admits one holder at a time across processes
// (pshared = 1); zero bytes are INIT (set up in place on first use).
unsafe impl RawLock for PosixSem {
    // SAFETY (of the zeroed value): zero bytes are a valid bit pattern for sem_t (integers);
    // InitOnce zero means "not initialised yet".
    const INIT: Self = PosixSem {
        init: InitOnce::new(),
        holder: Holder::new(),
        sem: UnsafeCell::new(unsafe { std::mem::zeroed() }),
    };
    const NAME: &'static str = "posix-sem";

    #[inline]
    #[track_caller]
    fn lock(&self) -> Acquired {
        if self.holder.is_me() {
            relock("PosixSem::lock");
        }
        let sem = self.ptr();
        // SAFETY: an initialised semaphore.
        while unsafe { libc::sem_wait(sem) } != 0 {
            let e = errno();
            assert_eq!(
                e,
                libc::EINTR,
                "sem_wait failed: {}",
                std::io::Error::from_raw_os_error(e)
            );
        }
        self.holder.set();
        Acquired::Clean
    }
    #[inline]
    fn try_lock(&self) -> Option<Acquired> {
        let sem = self.ptr();
        loop {
            // SAFETY: an initialised semaphore.
            if unsafe { libc::sem_trywait(sem) } == 0 {
                self.holder.set();
                return Some(Acquired::Clean);
            }
            match errno() {
                libc::EINTR => continue,
                libc::EAGAIN => return None,
                e => panic!(
                    "sem_trywait failed: {}",
                    std::io::Error::from_raw_os_error(e)
                ),
            }
        }
    }
    #[inline]
    fn try_lock_for(&self, timeout: Duration) -> Option<Acquired> {
        if self.holder.is_me() {
            return None;
        }
        let Some(at) = Deadline::after(timeout).monotonic_timespec() else {
            return Some(self.lock());
        };
        let sem = self.ptr();
        loop {
            // SAFETY: an initialised semaphore; `at` is a valid timespec on this stack.
            if unsafe { sem_clockwait(sem, libc::CLOCK_MONOTONIC, &at) } == 0 {
                self.holder.set();
                return Some(Acquired::Clean);
            }
            match errno() {
                libc::EINTR => continue,
                libc::ETIMEDOUT => return None,
                e => panic!(
                    "sem_clockwait failed: {}",
                    std::io::Error::from_raw_os_error(e)
                ),
            }
        }
    }
    #[inline]
    unsafe fn unlock(&self) {
        if !self.holder.is_me_cached() {
            // A guard copied into a fork child: the parent's thread holds the semaphore.
            return;
        }
        self.holder.clear();
        // SAFETY: the caller holds it, so it is initialised.
        let r = unsafe { libc::sem_post(self.sem.get()) };
        assert!(
            r == 0,
            "sem_post failed: {}",
            std::io::Error::last_os_error()
        );
    }
    #[inline]
    fn is_locked(&self) -> bool {
        let mut v = 0;
        // SAFETY: an initialised semaphore and a valid out pointer.
        unsafe { libc::sem_getvalue(self.ptr(), &mut v) };
        v <= 0
    }
    fn owner(&self) -> Option<(u32, u32)> {
        let tid = self.holder.get()?;
        Some((crate::sys::pid_of_tid(tid).unwrap_or(0), tid))
    }
}
