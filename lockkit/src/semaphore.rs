//! [`ShmSemaphore`]: a process-shared counting semaphore, for one process to wake another.
//!
//! # The word
//! ```text
//!  31        30 .. 0
//! [WAITERS] [tokens]
//! ```
//! One word, so that "a token arrived" and "somebody sleeps" are seen together: a post is one
//! compare-exchange that adds a token and clears `WAITERS`; a waiter takes a token with a
//! compare-exchange, or, when there is none, sets `WAITERS` and sleeps on the word with the
//! bit in the value it expects.
//!
//! Who wakes a sleeper: a waiter sleeps only on `0 | WAITERS`; every post changes the word,
//! and a post that clears `WAITERS` wakes every sleeper. Woken waiters that find no token
//! (another took it) set the bit again and sleep; a waiter that gives up (deadline) takes
//! nothing, so it can swallow no wake-up. Waking all rather than one costs extra wake-ups
//! only when several processes wait on one semaphore at once, and makes a lost wake-up
//! impossible without a second word whose ordering against this one would have to be
//! proven. Model-checked with loom: `RUSTFLAGS="--cfg loom" cargo test -p lockkit --lib
//! --release semaphore`.

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::time::Duration;

use crate::model::{futex_wait, futex_wake, AtomicU32, Deadline};
use crate::{ShmSafe, ShmZeroable};

const WAITERS: u32 = 1 << 31;
const TOKENS: u32 = WAITERS - 1;

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
    word: AtomicU32,
}

// SAFETY: one atomic word.
unsafe impl ShmSafe for ShmSemaphore {
    const LAYOUT: &'static crate::layout::TypeLayout =
        &crate::layout::TypeLayout::opaque::<Self>("lockkit::ShmSemaphore/2", "");
}
// SAFETY: zero bytes are a semaphore with no tokens and no waiters.
unsafe impl ShmZeroable for ShmSemaphore {}

impl ShmSemaphore {
    /// The most tokens a semaphore holds (2^31 - 1).
    pub const MAX_TOKENS: u32 = TOKENS;

    /// A semaphore holding `tokens`.
    ///
    /// # Panics
    /// If `tokens` exceeds [`MAX_TOKENS`](Self::MAX_TOKENS).
    #[cfg(not(loom))]
    pub const fn new(tokens: u32) -> Self {
        assert!(
            tokens <= TOKENS,
            "ShmSemaphore::new: more than MAX_TOKENS tokens"
        );
        ShmSemaphore {
            word: AtomicU32::new(tokens),
        }
    }

    /// A semaphore holding `tokens`.
    #[cfg(loom)]
    pub fn new(tokens: u32) -> Self {
        assert!(
            tokens <= TOKENS,
            "ShmSemaphore::new: more than MAX_TOKENS tokens"
        );
        ShmSemaphore {
            word: AtomicU32::new(tokens),
        }
    }

    /// Adds a token and wakes the waiters, in any process.
    ///
    /// # Panics
    /// If the semaphore already holds [`MAX_TOKENS`](Self::MAX_TOKENS); the count is left as
    /// it was, so no token is lost.
    #[track_caller]
    pub fn post(&self) {
        let mut w = self.word.load(Relaxed);
        loop {
            assert!(
                w & TOKENS != TOKENS,
                "ShmSemaphore::post: the semaphore holds MAX_TOKENS tokens already; one more \
                 would overflow the count (nothing was changed)"
            );
            match self
                .word
                .compare_exchange_weak(w, (w & TOKENS) + 1, Release, Relaxed)
            {
                Ok(_) => break,
                Err(now) => w = now,
            }
        }
        if w & WAITERS != 0 {
            futex_wake(&self.word, i32::MAX);
        }
    }

    /// Takes a token if there is one.
    pub fn try_wait(&self) -> bool {
        let mut w = self.word.load(Relaxed);
        while w & TOKENS > 0 {
            match self.word.compare_exchange_weak(w, w - 1, Acquire, Relaxed) {
                Ok(_) => return true,
                Err(now) => w = now,
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
            // No token: flag ourselves, unless a token came meanwhile.
            match self.word.compare_exchange(0, WAITERS, Relaxed, Relaxed) {
                Ok(_) | Err(WAITERS) => {
                    // EINTR, spurious wake-ups and timeouts all go round the loop, which
                    // re-checks the tokens and the deadline.
                    futex_wait(&self.word, WAITERS, left);
                }
                Err(_) => {} // a token arrived: take it
            }
        }
    }

    /// The number of tokens at this instant.
    pub fn value(&self) -> u32 {
        self.word.load(Relaxed) & TOKENS
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
        b.preemption_bound = Some(2);
        b.check(f);
    }

    #[test]
    fn two_waiters_get_the_two_posts_of_one_poster() {
        model(|| {
            let s = Arc::new(ShmSemaphore::new(0));
            let p = Arc::clone(&s);
            let poster = thread::spawn(move || {
                p.post();
                p.post();
            });
            let s2 = Arc::clone(&s);
            let waiter = thread::spawn(move || s2.wait());
            s.wait();
            waiter.join().unwrap();
            poster.join().unwrap();
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
