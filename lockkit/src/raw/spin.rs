//! [`Spin`]: Kamailio's fast lock. Bounded spinning with `spin_loop` hints, then
//! `sched_yield`, never sleeping in the kernel.
//!
//! The word is `0` when free and the holder's TID when taken. It is the right choice when
//! critical sections are a few instructions long and there are at least as many cores as
//! runnable processes. It is the wrong one otherwise: with more runnable processes than
//! cores, a waiter spins while the holder is descheduled, burning the time slice the holder
//! needs (the 100%-CPU symptom Kamailio's documentation describes has this shape too).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::holder::relock;
use super::{Acquired, RawLock};
use crate::deadline::Deadline;
use crate::sys;

/// Spins before each `sched_yield`.
const SPINS: u32 = 100;

/// A spin lock whose word names its holder. Zero bytes are unlocked.
#[repr(C)]
#[derive(Debug, Default)]
pub struct Spin {
    word: AtomicU32,
}

impl Spin {
    #[inline]
    fn try_take(&self, tid: u32) -> bool {
        self.word
            .compare_exchange(0, tid, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Spins and yields until the lock is taken; `false` only when a timed attempt
    /// (`deadline` is `Some`) gave up.
    #[cold]
    #[track_caller]
    fn wait(&self, mut tid: u32, deadline: Option<Deadline>) -> bool {
        loop {
            for _ in 0..SPINS {
                // Test before test-and-set: spinning on a read keeps the line shared.
                if self.word.load(Ordering::Relaxed) == 0 && self.try_take(tid) {
                    return true;
                }
                std::hint::spin_loop();
            }
            if self.word.load(Ordering::Relaxed) == tid {
                if !sys::tid_confirmed(tid) {
                    tid = sys::tid();
                    continue;
                }
                if deadline.is_some() {
                    return false;
                }
                relock("Spin::lock");
            }
            if deadline.is_some_and(|d| d.expired()) {
                return false;
            }
            std::thread::yield_now();
        }
    }
}

// SAFETY: one atomic word; zero is unlocked; a CAS from 0 takes it and only the holder stores
// 0 back, so at most one thread in any process holds it.
unsafe impl RawLock for Spin {
    const INIT: Self = Spin {
        word: AtomicU32::new(0),
    };
    const NAME: &'static str = "spin";

    #[inline]
    fn lock(&self) -> Acquired {
        let tid = sys::tid();
        if !self.try_take(tid) {
            self.wait(tid, None);
        }
        Acquired::Clean
    }
    #[inline]
    fn try_lock(&self) -> Option<Acquired> {
        self.try_take(sys::tid()).then_some(Acquired::Clean)
    }
    fn try_lock_for(&self, timeout: Duration) -> Option<Acquired> {
        let tid = sys::tid();
        (self.try_take(tid) || self.wait(tid, Some(Deadline::after(timeout))))
            .then_some(Acquired::Clean)
    }
    #[inline]
    unsafe fn unlock(&self) {
        // Only the holder's word goes back to 0: a guard `fork` copied into a child (another
        // tid) leaves its parent's lock alone.
        let _ = self
            .word
            .compare_exchange(sys::tid(), 0, Ordering::Release, Ordering::Relaxed);
    }
    fn is_locked(&self) -> bool {
        self.word.load(Ordering::Relaxed) != 0
    }
    fn owner(&self) -> Option<(u32, u32)> {
        match self.word.load(Ordering::Relaxed) {
            0 => None,
            tid => Some((0, tid)),
        }
    }
}
