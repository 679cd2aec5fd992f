//! [`ShmSemaphore`]: a process-shared counting semaphore, for one process to wake another.
//!
//! # The words
//! `count` is the number of tokens; waiters sleep on it with `FUTEX_WAIT(count, 0)`.
//! `waiters` counts the threads that may be asleep, so `post` makes the wake system call only
//! when someone may need it. A waiter registers in `waiters` before it re-reads `count` and
//! a poster adds to `count` before it reads `waiters` (both sequentially consistent), so one
//! of them always sees the other: no wake-up is lost. The futex wait itself re-checks
//! `count == 0` atomically in the kernel.

use std::sync::atomic::{AtomicU32, Ordering::*};
use std::time::{Duration, Instant};

use crate::sys::{self, Wake};
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
    pub const fn new(tokens: u32) -> Self {
        ShmSemaphore {
            count: AtomicU32::new(tokens),
            waiters: AtomicU32::new(0),
        }
    }

    /// Adds a token and wakes one waiter, in any process.
    ///
    /// # Panics
    /// If the count would overflow `u32`.
    pub fn post(&self) {
        let before = self.count.fetch_add(1, SeqCst);
        assert!(
            before != u32::MAX,
            "ShmSemaphore::post: the count overflowed"
        );
        if self.waiters.load(SeqCst) > 0 {
            sys::futex_wake(&self.count, 1);
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
        self.wait_until(None);
    }

    /// Takes a token, waiting at most `timeout`; false if none came.
    pub fn wait_for(&self, timeout: Duration) -> bool {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.wait_until(Some(deadline)),
            None => {
                self.wait_until(None);
                true
            }
        }
    }

    fn wait_until(&self, deadline: Option<Instant>) -> bool {
        loop {
            if self.try_wait() {
                return true;
            }
            let left = match deadline {
                None => None,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return false,
                },
            };
            self.waiters.fetch_add(1, SeqCst);
            // Re-check after registering, so a post in between is not missed; the kernel
            // re-checks `count == 0` again before sleeping. EINTR and spurious wake-ups
            // just go round the loop.
            if self.count.load(SeqCst) == 0 {
                // Whatever ended the wait, the loop re-checks the count and the deadline.
                let _: Wake = sys::futex_wait(&self.count, 0, left);
            }
            self.waiters.fetch_sub(1, SeqCst);
        }
    }

    /// The number of tokens at this instant.
    pub fn value(&self) -> u32 {
        self.count.load(Relaxed)
    }
}
