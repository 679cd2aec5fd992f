//! [`PosixSem`]: a process-shared POSIX semaphore (`sem_init(.., 1, 1)`) used as a lock,
//! set up in place on first use.
//!
//! A semaphore has no owner. A [`Holder`] word beside it records the holding thread's owner
//! id, so a relock by the holder panics (or returns `None` from the timed form) instead of
//! hanging, a thread that does not hold it (a guard copied into a `fork` child) does not post
//! it, and a holder's death is noticed: waiters sleep in naps (50 µs, doubling to 1 ms) and
//! after each ask the kernel whether the recorded holder's process is gone (`try_lock` asks
//! too); the first to find it gone takes its place (the token it consumed is never coming
//! back) and is told [`Acquired::OwnerDied`], as is every acquirer after it until
//! `mark_consistent`. **Not covered**: a holder killed between `sem_wait` returning and
//! recording itself, or between clearing the record and posting: its token is lost and the
//! lock stays held. That window is wider than it looks: 8% of random kills of a process
//! looping lock/unlock landed in it (111 of 1,330, measured by an adversarial review). Choose
//! the futex lock where processes get killed. `sem_wait` and `sem_clockwait` return
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
use super::naps::{PROBE_FIRST, PROBE_MAX};
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
        let ready = self.ptr_until(Deadline::NEVER);
        ready.expect("an untimed set-up does not give up")
    }

    /// The semaphore, set up on first use; `None` if another process is still setting it up
    /// at `deadline`.
    #[inline]
    fn ptr_until(&self, deadline: Deadline) -> Option<*mut libc::sem_t> {
        self.init
            .ensure_until(deadline, || {
                // SAFETY: we are the one initialiser (InitOnce); the memory is valid and
                // unused.
                let r = unsafe { libc::sem_init(self.sem.get(), 1, 1) };
                assert!(
                    r == 0,
                    "sem_init failed: {}",
                    std::io::Error::last_os_error()
                );
            })
            .then(|| self.sem.get())
    }
}

impl PosixSem {
    /// Waits for the token in naps; after each nap checks whether the recorded holder died
    /// and, if so, takes its place (the token it consumed is never coming back). `None` once
    /// `deadline` passed.
    fn wait(&self, deadline: Deadline) -> Option<Acquired> {
        let sem = self.ptr_until(deadline)?;
        let me = self.holder.me();
        let mut nap = PROBE_FIRST;
        loop {
            let left = deadline.left().ok()?;
            let this_nap = left.map_or(nap, |l| l.min(nap));
            let at = Deadline::after(this_nap)
                .monotonic_timespec()
                .expect("a nap of at most 1 ms is representable");
            // SAFETY: an initialised semaphore; `at` is a valid timespec on this stack.
            if unsafe { sem_clockwait(sem, libc::CLOCK_MONOTONIC, &at) } == 0 {
                return Some(self.holder.set(me));
            }
            match errno() {
                libc::EINTR => continue,
                libc::ETIMEDOUT => {
                    if self.holder.take_over_from_dead() {
                        return Some(Acquired::OwnerDied);
                    }
                    nap = (nap * 2).min(PROBE_MAX);
                }
                e => panic!(
                    "sem_clockwait failed: {}",
                    std::io::Error::from_raw_os_error(e)
                ),
            }
        }
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
        // The uncontended case without reading the clock.
        if let Some(how) = self.try_lock() {
            return how;
        }
        match self.wait(Deadline::NEVER) {
            Some(how) => how,
            None => unreachable!("an untimed wait does not give up"),
        }
    }
    #[inline]
    fn try_lock(&self) -> Option<Acquired> {
        // Never waits, not even for another process's set-up of the semaphore.
        let sem = self.ptr_until(Deadline::after(Duration::ZERO))?;
        let me = self.holder.me();
        loop {
            // SAFETY: an initialised semaphore.
            if unsafe { libc::sem_trywait(sem) } == 0 {
                return Some(self.holder.set(me));
            }
            match errno() {
                libc::EINTR => continue,
                // Held; by a holder whose process is gone? Then taken over, as a wait would.
                libc::EAGAIN => {
                    return self
                        .holder
                        .take_over_from_dead()
                        .then_some(Acquired::OwnerDied)
                }
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
        if let Some(how) = self.try_lock() {
            return Some(how);
        }
        self.wait(Deadline::after(timeout))
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
    fn owner(&self) -> Option<crate::liveness::Owner> {
        self.holder.owner()
    }
    unsafe fn mark_consistent(&self) {
        self.holder.mark_consistent();
    }
    fn is_inconsistent(&self) -> bool {
        self.holder.acquired() == Acquired::OwnerDied
    }
}
