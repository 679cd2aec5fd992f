//! [`Spin`]: Kamailio's fast lock. Bounded spinning with `spin_loop` hints, then
//! `sched_yield`, never sleeping in the kernel.
//!
//! The word is `0` when free and the holder's owner id when taken (as the futex's: see
//! `crate::liveness`), with bit 30 (`INCONSISTENT`) set from a holder's death until
//! `mark_consistent`. It is the right choice when critical sections are a few instructions
//! long and there are at least as many cores as runnable processes. It is the wrong one
//! otherwise: with more runnable processes than cores, a waiter spins while the holder is
//! descheduled, burning the time slice the holder needs (the 100%-CPU symptom Kamailio's
//! documentation describes has this shape too).
//!
//! Owner death: a waiter that has been yielding for a probe interval (50 µs, doubling to
//! 1 ms while one owner holds on) asks the kernel whether the owner's process is gone, and
//! takes such an owner's lock over with an exact-value compare-exchange, reporting
//! [`Acquired::OwnerDied`], as the futex lock does; so does a failed `try_lock`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::holder::relock;
use super::naps::{PROBE_FIRST, PROBE_MAX};
use super::{Acquired, RawLock};
use crate::deadline::Deadline;
use crate::liveness::{self, ID_MASK as OWNER_MASK};

/// Spins before each `sched_yield`.
const SPINS: u32 = 100;
const INCONSISTENT: u32 = 1 << 30;

/// A spin lock whose word names its holder. Zero bytes are unlocked.
#[repr(C)]
#[derive(Debug, Default)]
pub struct Spin {
    word: AtomicU32,
}

impl Spin {
    #[inline]
    fn addr(&self) -> usize {
        self as *const Self as usize
    }

    #[inline]
    fn try_take(&self, me: u32) -> bool {
        self.word
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Takes a free word, keeping `INCONSISTENT`; how the acquisition went.
    fn take_free(&self, w: u32, me: u32) -> Option<Acquired> {
        if w & OWNER_MASK != 0 {
            return None;
        }
        self.word
            .compare_exchange(w, w | me, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| {
                if w & INCONSISTENT != 0 {
                    Acquired::OwnerDied
                } else {
                    Acquired::Clean
                }
            })
    }

    /// Spins and yields until the lock is taken; `None` only when a timed attempt
    /// (`deadline` is `Some`) gave up.
    #[cold]
    #[track_caller]
    fn wait(&self, me: u32, deadline: Option<Deadline>) -> Option<Acquired> {
        let (mut probe_at, mut interval, mut owner_seen) = (Instant::now(), PROBE_FIRST, 0);
        loop {
            for _ in 0..SPINS {
                // Test before test-and-set: spinning on a read keeps the line shared.
                let w = self.word.load(Ordering::Relaxed);
                if let Some(how) = self.take_free(w, me) {
                    return Some(how);
                }
                std::hint::spin_loop();
            }
            let w = self.word.load(Ordering::Relaxed);
            let owner = w & OWNER_MASK;
            if owner == me {
                if deadline.is_some() {
                    return None;
                }
                relock("Spin::lock");
            }
            if deadline.is_some_and(|d| d.expired()) {
                return None;
            }
            if owner != owner_seen {
                (owner_seen, probe_at, interval) = (owner, Instant::now(), PROBE_FIRST);
            } else if owner != 0 && probe_at.elapsed() >= interval {
                if liveness::holder_gone(self.addr(), owner)
                    && self
                        .word
                        .compare_exchange(
                            w,
                            me | INCONSISTENT,
                            Ordering::Acquire,
                            Ordering::Relaxed,
                        )
                        .is_ok()
                {
                    return Some(Acquired::OwnerDied);
                }
                (probe_at, interval) = (Instant::now(), (interval * 2).min(PROBE_MAX));
            }
            std::thread::yield_now();
        }
    }
}

// SAFETY: one atomic word; zero is unlocked; a CAS from a free word takes it, only the holder
// clears the owner back, and a take-over happens only from an owner found dead, by an
// exact-value CAS: at most one thread in any process holds it.
unsafe impl RawLock for Spin {
    const INIT: Self = Spin {
        word: AtomicU32::new(0),
    };
    const NAME: &'static str = "spin";

    #[inline]
    #[track_caller]
    fn lock(&self) -> Acquired {
        let me = liveness::id_at(self.addr());
        if self.try_take(me) {
            return Acquired::Clean;
        }
        match self.wait(me, None) {
            Some(how) => how,
            None => unreachable!("an untimed wait does not give up"),
        }
    }
    #[inline]
    fn try_lock(&self) -> Option<Acquired> {
        let me = liveness::id_at(self.addr());
        if self.try_take(me) {
            return Some(Acquired::Clean);
        }
        let w = self.word.load(Ordering::Relaxed);
        if let Some(how) = self.take_free(w, me) {
            return Some(how);
        }
        // A holder whose process is gone: taken over, as `lock` would.
        let owner = w & OWNER_MASK;
        (owner != 0
            && owner != me
            && liveness::holder_gone(self.addr(), owner)
            && self
                .word
                .compare_exchange(w, me | INCONSISTENT, Ordering::Acquire, Ordering::Relaxed)
                .is_ok())
        .then_some(Acquired::OwnerDied)
    }
    fn try_lock_for(&self, timeout: Duration) -> Option<Acquired> {
        let me = liveness::id_at(self.addr());
        if self.try_take(me) {
            return Some(Acquired::Clean);
        }
        self.wait(me, Some(Deadline::after(timeout)))
    }
    #[inline]
    unsafe fn unlock(&self) {
        // A plain store, as Kamailio's: only the holder writes a taken word (waiters only
        // compare-exchange free ones or dead owners'), so the flag read here is exact.
        let keep = self.word.load(Ordering::Relaxed) & INCONSISTENT;
        self.word.store(keep, Ordering::Release);
    }
    fn is_locked(&self) -> bool {
        self.word.load(Ordering::Relaxed) & OWNER_MASK != 0
    }
    fn owner(&self) -> Option<crate::liveness::Owner> {
        let owner = self.word.load(Ordering::Relaxed) & OWNER_MASK;
        (owner != 0).then(|| liveness::describe(self.addr(), owner))
    }
    unsafe fn mark_consistent(&self) {
        self.word.fetch_and(!INCONSISTENT, Ordering::Relaxed);
    }
    fn is_inconsistent(&self) -> bool {
        self.word.load(Ordering::Relaxed) & INCONSISTENT != 0
    }
}
