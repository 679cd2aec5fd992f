//! [`ShmSemaphore`]: a process-shared counting semaphore, for one process to wake another.
//!
//! # The words
//! `count` is the number of tokens; waiters sleep on it with `FUTEX_WAIT(count, 0)`.
//! `waiters` counts the threads that may be asleep, so `post` makes the wake system call only
//! when someone may need it. A waiter registers in `waiters` before it re-reads `count` and
//! a poster adds to `count` before it reads `waiters` (both sequentially consistent), so one
//! of them always sees the other: no wake-up is lost. The futex wait itself re-checks
//! `count == 0` atomically in the kernel.
//!
//! Who wakes a sleeper: every `post` that finds `waiters > 0` wakes one, and a waiter sleeps
//! only on `count == 0`, which every post changes. A waiter that gives up (deadline) takes no
//! token, so it swallows no post: if it was woken and then left, the token it was woken for
//! is still in `count` for the next `try_wait` or for a waiter whose own sleep returns
//! because `count` is no longer 0.
//!
//! Model-checked with loom: `RUSTFLAGS="--cfg loom" cargo test -p lockkit --lib --release
//! semaphore`.

use std::sync::atomic::Ordering::*;
use std::time::Duration;

use crate::deadline::Deadline;
use crate::model::{futex_wait, futex_wake, AtomicU32};
use crate::{ShmSafe, ShmZeroable};

/// A counting semaphore that works across processes, with timed waits.
///
/// This is what Kamailio's dmq module builds by locking a `gen_lock_t` in one process and
/// releasing it in another, which lockkit's guards do not allow (a guard is released by the
/// thread that took the lock). Zero bytes are a semaphore with no tokens.
///
/// ```
/// use lockkit::ShmSemaphore;
/// use std::time::Duration;
///
/// let jobs = ShmSemaphore::new(0);
/// assert!(!jobs.wait_for(Duration::from_millis(10))); // nothing posted yet
/// jobs.post(); // in the producer process
/// jobs.wait(); // in the consumer process
/// assert_eq!(jobs.value(), 0);
/// ```
#[repr(C)]
#[derive(Debug, Default)]
pub struct ShmSemaphore {
    count: AtomicU32,
    waiters: AtomicU32,
}

// SAFETY: two atomic words.
unsafe impl ShmSafe for ShmSemaphore {}
// SAFETY: zero bytes are a semaphore with no tokens and no waiters.
unsafe impl ShmZeroable for ShmSemaphore {}

impl ShmSemaphore {
    /// A semaphore holding `tokens`.
    #[cfg(not(loom))]
    pub const fn new(tokens: u32) -> Self {
        ShmSemaphore {
            count: AtomicU32::new(tokens),
            waiters: AtomicU32::new(0),
        }
    }

    /// A semaphore holding `tokens`.
    #[cfg(loom)]
    pub fn new(tokens: u32) -> Self {
        ShmSemaphore {
            count: AtomicU32::new(tokens),
            waiters: AtomicU32::new(0),
        }
    }

    /// Adds a token and wakes one waiter, in any process.
    ///
    /// # Panics
    /// If the semaphore already holds `u32::MAX` tokens; the count is left as it was, so no
    /// token is lost.
    #[track_caller]
    pub fn post(&self) {
        let mut c = self.count.load(Relaxed);
        loop {
            assert!(
                c != u32::MAX,
                "ShmSemaphore::post: the semaphore holds u32::MAX tokens already; one more \
                 would overflow the count (nothing was changed)"
            );
            match self.count.compare_exchange_weak(c, c + 1, SeqCst, Relaxed) {
                Ok(_) => break,
                Err(now) => c = now,
            }
        }
        if self.waiters.load(SeqCst) > 0 {
            futex_wake(&self.count, 1);
        }
    }

    /// Takes a token if there is one.
    pub fn try_wait(&self) -> bool {
        let mut c = self.count.load(SeqCst);
        while c > 0 {
            match self.count.compare_exchange_weak(c, c - 1, Acquire, Relaxed) {
                Ok(_) => return true,
                Err(now) => c = now,
            }
        }
        false
    }

    /// Takes a token, sleeping until one is posted.
    pub fn wait(&self) {
        self.wait_until(Deadline::NEVER);
    }

    /// Takes a token, waiting at most `timeout`; false if none came.
    pub fn wait_for(&self, timeout: Duration) -> bool {
        self.wait_until(Deadline::after(timeout))
    }

    fn wait_until(&self, deadline: Deadline) -> bool {
        loop {
            if self.try_wait() {
                return true;
            }
            let Ok(left) = deadline.left() else {
                return false;
            };
            self.waiters.fetch_add(1, SeqCst);
            // Re-check after registering, so a post in between is not missed; the kernel
            // re-checks `count == 0` again before sleeping. EINTR and spurious wake-ups
            // just go round the loop.
            if self.count.load(SeqCst) == 0 {
                // Whatever ended the wait, the loop re-checks the count and the deadline.
                futex_wait(&self.count, 0, left);
            }
            self.waiters.fetch_sub(1, SeqCst);
        }
    }

    /// The number of tokens at this instant.
    pub fn value(&self) -> u32 {
        self.count.load(Relaxed)
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! Every interleaving of posts and waits (timed ones included): no waiter is left asleep
    //! while a token is there, and no token is lost or made up.

    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(f);
    }

    #[test]
    fn two_waiters_get_the_two_posts_of_two_posters() {
        model(|| {
            let s = Arc::new(ShmSemaphore::new(0));
            let posters: Vec<_> = (0..2)
                .map(|_| {
                    let s = Arc::clone(&s);
                    thread::spawn(move || s.post())
                })
                .collect();
            let s2 = Arc::clone(&s);
            let waiter = thread::spawn(move || s2.wait());
            s.wait();
            waiter.join().unwrap();
            for p in posters {
                p.join().unwrap();
            }
            assert_eq!(s.value(), 0);
        });
    }

    #[test]
    fn a_waiter_that_gives_up_swallows_no_token() {
        model(|| {
            let s = Arc::new(ShmSemaphore::new(0));
            let (a, b) = (Arc::clone(&s), Arc::clone(&s));
            let giver = thread::spawn(move || a.wait_for(Duration::from_millis(1)));
            let poster = thread::spawn(move || b.post());
            let given_up_with = giver.join().unwrap();
            poster.join().unwrap();
            // Either the timed waiter took the token, or it is still there.
            assert_eq!(u32::from(given_up_with) + s.value(), 1);
            if !given_up_with {
                s.wait();
            }
        });
    }
}
