//! [`PthreadMutex`]: glibc's process-shared, robust `pthread_mutex_t`, set up in place.
//!
//! Robust means the kernel and glibc notice when the owner dies holding it: the next
//! acquirer gets `EOWNERDEAD`, which lockkit passes on as [`Acquired::OwnerDied`] rather than
//! swallowing it. lockkit makes glibc's mutex consistent at once (glibc would make a mutex
//! released unrepaired unusable for everyone, for ever) and keeps its own flag instead, as
//! the other backends do: every acquirer is told `OwnerDied` until one calls
//! `mark_consistent`.
//!
//! glibc's robust list is per *thread*: it hands the mutex on (`EOWNERDEAD`) when the holding
//! thread exits, even while its process lives with the thread's guard leaked. lockkit's owner
//! is the process, so an acquirer that finds, in the [`Holder`] word, a holder whose process
//! the kernel says is alive (`crate::liveness`) releases glibc's mutex again and goes on
//! waiting (polling every millisecond): the lock stays held while that process lives, as with
//! the other backends, and is handed on, told [`Acquired::OwnerDied`], once it is gone.
//!
//! A relock by the holder is refused by owner id (a panic from `lock`, `None` from the
//! `try_*` forms) rather than a hang; the mutex itself is of glibc's normal kind, whose own
//! error check would compare kernel thread ids across pid namespaces. Timed waits measure
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

/// The lock is held by a live process's leaked guard (see the module docs).
struct Held;

/// How soon a waiter looks again at a lock held by a live process's leaked guard, first and
/// at most. Short at first: glibc hands a killed process's mutex on (its robust list is
/// walked as its memory goes) a little before the kernel closes its files and so drops the
/// lock on its owner id, and the first look may come in between.
const LEAKED_NAP_FIRST: Duration = Duration::from_micros(20);
const LEAKED_NAP: Duration = Duration::from_millis(1);

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
        let ready = self.ptr_until(Deadline::NEVER);
        ready.expect("an untimed set-up does not give up")
    }

    /// The mutex, set up on first use; `None` if another process is still setting it up at
    /// `deadline`.
    #[inline]
    fn ptr_until(&self, deadline: Deadline) -> Option<*mut libc::pthread_mutex_t> {
        let ready = self.init.ensure_until(deadline, || {
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
                // The normal kind: glibc's error check compares kernel thread ids, which
                // name different threads in different pid namespaces (two pid 1s sharing a
                // region were taken for a relock); lockkit checks relocks by owner id.
                check(
                    "settype",
                    libc::pthread_mutexattr_settype(&mut attr, libc::PTHREAD_MUTEX_NORMAL),
                );
                check(
                    "pthread_mutex_init",
                    libc::pthread_mutex_init(self.mutex.get(), &attr),
                );
                libc::pthread_mutexattr_destroy(&mut attr);
            }
        });
        ready.then(|| self.mutex.get())
    }

    /// Maps a lock call's result; `timed` says whether `EDEADLK` (a relock) means "no"
    /// rather than a panic. `Err(Held)` when glibc's mutex was taken but the lock is still
    /// held by a thread of a live process that exited with its guard leaked (glibc's mutex is
    /// released again).
    #[inline]
    #[track_caller]
    fn outcome(
        &self,
        me: u32,
        r: libc::c_int,
        what: &str,
        timed: bool,
    ) -> Result<Option<Acquired>, Held> {
        let how = if r == 0 {
            Some(Acquired::Clean)
        } else {
            Self::slow_outcome(r, what, timed)
        };
        if how == Some(Acquired::OwnerDied) {
            self.make_consistent();
        }
        if how.is_some() && self.held_by_a_live_process() {
            // SAFETY: this thread holds glibc's mutex (it was just taken, and made
            // consistent if it came with EOWNERDEAD).
            check("pthread_mutex_unlock", unsafe {
                libc::pthread_mutex_unlock(self.mutex.get())
            });
            return Err(Held);
        }
        if how == Some(Acquired::OwnerDied) {
            // A death indeed (not a thread's leaked guard): the news goes to every acquirer
            // until `mark_consistent`, as for the other backends.
            self.holder.mark_died();
        }
        Ok(how.map(|_| self.holder.set(me)))
    }

    /// Whether the holder recorded is another thread whose process is alive: it exited with
    /// its guard leaked (glibc handed its mutex on), so the lock is still held.
    #[inline]
    fn held_by_a_live_process(&self) -> bool {
        match self.holder.get() {
            None => false,
            Some(_) if self.holder.is_me() => false,
            Some(h) => !crate::liveness::holder_gone(&self.holder as *const Holder as usize, h),
        }
    }

    /// After `EOWNERDEAD`: glibc's mutex is made consistent at once (released unrepaired,
    /// it would become unusable for every process, for ever); lockkit's own flag carries the
    /// news instead, once the holder is known to be gone.
    #[cold]
    fn make_consistent(&self) {
        // SAFETY: this thread holds the mutex (it just got EOWNERDEAD from a lock call).
        check("pthread_mutex_consistent", unsafe {
            libc::pthread_mutex_consistent(self.mutex.get())
        });
    }

    /// Waits, in naps, while [`outcome`](Self::outcome) says the lock is held by a live
    /// process's leaked guard; `attempt` makes one lock call with the time left (`None`:
    /// untimed).
    #[track_caller]
    fn acquire(
        &self,
        deadline: Option<Deadline>,
        what: &str,
        timed: bool,
        attempt: impl Fn(Option<Duration>) -> libc::c_int,
    ) -> Option<Acquired> {
        let me = self.holder.me();
        let mut next = LEAKED_NAP_FIRST;
        loop {
            let left = match deadline.map(|d| d.left()) {
                None => None,
                Some(Ok(left)) => left,
                Some(Err(_)) => return None,
            };
            match self.outcome(me, attempt(left), what, timed) {
                Ok(how) => return how,
                Err(Held) => {
                    let nap = left.map_or(next, |l| l.min(next));
                    if nap.is_zero() {
                        return None;
                    }
                    std::thread::sleep(nap);
                    next = (next * 2).min(LEAKED_NAP);
                }
            }
        }
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
        if self.holder.is_me() {
            super::holder::relock("PthreadMutex::lock");
        }
        let mutex = self.ptr();
        self.acquire(None, "lock", false, |_| {
            // SAFETY: an initialised process-shared mutex (ptr() ensured it).
            unsafe { libc::pthread_mutex_lock(mutex) }
        })
        .expect("an untimed lock does not give up")
    }
    #[inline]
    fn try_lock(&self) -> Option<Acquired> {
        let me = self.holder.me();
        if self.holder.is_me() {
            return None;
        }
        // Never waits, not even for another process's set-up of the mutex.
        let mutex = self.ptr_until(Deadline::after(Duration::ZERO))?;
        // SAFETY: as in `lock`.
        let r = unsafe { libc::pthread_mutex_trylock(mutex) };
        self.outcome(me, r, "try_lock", true).ok().flatten()
    }
    #[inline]
    fn try_lock_for(&self, timeout: Duration) -> Option<Acquired> {
        if self.holder.is_me() {
            return None;
        }
        let deadline = Deadline::after(timeout);
        let mutex = self.ptr_until(deadline)?;
        self.acquire(Some(deadline), "try_lock_for", true, |_| {
            match deadline.monotonic_timespec() {
                // SAFETY: as in `lock`; `at` is a valid timespec on this stack and
                // CLOCK_MONOTONIC a clock glibc accepts here.
                Some(at) => unsafe { pthread_mutex_clocklock(mutex, libc::CLOCK_MONOTONIC, &at) },
                // No representable deadline: wait as long as it takes, but a relock still
                // answers "no" at once.
                // SAFETY: as in `lock`.
                None => unsafe { libc::pthread_mutex_lock(mutex) },
            }
        })
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
    fn owner(&self) -> Option<crate::liveness::Owner> {
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
