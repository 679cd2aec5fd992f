//! [`Spin`]: Kamailio's fast lock. Bounded spinning with `spin_loop` hints, then
//! `sched_yield`, never sleeping in the kernel.
//!
//! The word is `0` when free and the holder's TID when taken. It is the right choice when
//! critical sections are a few instructions long and there are at least as many cores as
//! runnable processes. It is the wrong one otherwise: with more runnable processes than
//! cores, a waiter spins while the holder is descheduled, burning the time slice the holder
//! needs (the 100%-CPU symptom Kamailio's documentation describes has this shape too).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::{Acquired, RawLock};
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

    #[cold]
    fn wait(&self, tid: u32, deadline: Option<Instant>) -> bool {
        loop {
            for _ in 0..SPINS {
                // Test before test-and-set: spinning on a read keeps the line shared.
                if self.word.load(Ordering::Relaxed) == 0 && self.try_take(tid) {
                    return true;
                }
                std::hint::spin_loop();
            }
            if self.word.load(Ordering::Relaxed) == tid {
                if deadline.is_some() {
                    return false;
                }
                panic!("Spin::lock: thread {tid} already holds this lock; waiting would never end");
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
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
        // A deadline too far to represent waits "forever", checked once a day.
        let deadline = Instant::now()
            .checked_add(timeout)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400));
        (self.try_take(tid) || self.wait(tid, Some(deadline))).then_some(Acquired::Clean)
    }
    #[inline]
    unsafe fn unlock(&self) {
        self.word.store(0, Ordering::Release);
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
