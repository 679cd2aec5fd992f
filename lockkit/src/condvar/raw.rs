//! The wait/notify protocol behind [`ShmCondvar`](super::ShmCondvar): two words in shared
//! memory, the scheme of musl's process-shared `pthread_cond_t` and of std's futex condition
//! variable, with a waiter count so that a notify nobody waits for costs one load.
//!
//! # The words
//! - `seq`: a sequence number. Every notify that finds a waiter registered bumps it, then
//!   wakes sleepers on it; a waiter sleeps on `seq` with the value it read while it held the
//!   mutex, so any bump after that read ends (or prevents) its sleep.
//! - `waiters`: how many threads have registered (under the mutex) and not yet left their
//!   sleep. Only a hint that a notify must do work: it is never trusted for anything else.
//!
//! Zero bytes are a condition variable nobody waits on.
//!
//! # Who wakes each sleeper (the liveness argument)
//! A waiter registers (`waiters += 1`, then reads `seq`) *before* it releases the mutex, and
//! sleeps only while `seq` still holds the value it read. A notifier that changed the
//! condition under the same mutex did so after the waiter's release (or the waiter would
//! have seen the change and not waited), so its notify happens after the registration:
//! its load of `waiters` cannot miss the waiter's increment (it happens-before, through the
//! mutex's release and acquire, and the waiter's decrement comes only after its sleep), and
//! its bump of `seq` comes after the waiter's read of `seq`. Either the waiter's
//! `futex_wait` finds `seq` changed and returns at once, or the kernel has queued it before
//! the bump's `futex_wake` looks (the kernel checks the word and queues the sleeper as one
//! step). `Relaxed` is therefore enough on both words: the mutex orders them, and nothing else
//! is published through them. A notifier that changes the condition *without* the mutex can
//! lose a wake-up, as with every condition variable: no ordering of these words could help,
//! since the waiter's check of the condition and its registration are two steps.
//!
//! - A timed waiter that gives up decrements `waiters` and leaves; it never swallows a
//!   wake-up meant for another: a waiter that finds `seq` moved reports itself notified even
//!   if its deadline has passed too, so its caller looks at the condition again.
//! - A waiter killed in its sleep leaves `waiters` one too high for good (nothing can tell a
//!   dead waiter from one about to sleep): every later notify then bumps `seq` and makes one
//!   `futex_wake` system call that may wake nobody (measured, release build, medians of 5:
//!   `notify_one` 1.3 ns with nobody registered, 137 ns with one killed waiter counted; an
//!   uncontended `ShmMutex` lock+unlock took 16.5 ns in the same run). That costs time, never
//!   a wake-up: the
//!   kernel has removed the dead thread from the futex's queue, so a `notify_one` wakes a
//!   live sleeper.
//! - `notify_one` wakes one thread asleep on `seq`; a waiter that registered before the bump
//!   but had not yet slept also returns (it finds `seq` moved). Callers see that as a
//!   spurious wake-up, which they must handle anyway (`wait_while`).
//! - A woken waiter that is killed before it takes the mutex takes its `notify_one` with
//!   it, as with `pthread_cond_signal`: use `notify_all`, or timed waits, where waiters can
//!   be killed.
//! - `seq` wraps after 2^32 notifies; a waiter that sleeps through exactly a multiple of
//!   2^32 bumps between its read and its sleep would miss one (std's condvar has the same
//!   window).
//!
//! The words live in memory other processes can write: every operation here accepts any
//! value in them (wrapping arithmetic, no indexing), so garbage can cost wake-ups or
//! spurious returns, never undefined behaviour or a panic.
//!
//! Model-checked with loom: `RUSTFLAGS="--cfg loom" cargo test -p lockkit --lib --release
//! -- condvar`.

use std::sync::atomic::Ordering::Relaxed;

use crate::model::{futex_wait, futex_wake, AtomicU32, Deadline};

/// The two words (see the module docs).
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct RawCondvar {
    seq: AtomicU32,
    waiters: AtomicU32,
}

/// What a registered waiter read of `seq`: it sleeps only while `seq` still holds it.
#[must_use = "a registered waiter must sleep (or leave) with its ticket, or `waiters` stays high"]
pub(crate) struct Ticket(u32);

/// Why a sleep ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Woke {
    /// `seq` moved: a notify came (or garbage was written); look at the condition again.
    Notified,
    /// The deadline passed and `seq` had not moved.
    TimedOut,
}

impl RawCondvar {
    /// A condition variable nobody waits on (zero bytes).
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        RawCondvar {
            seq: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
        }
    }

    /// A condition variable nobody waits on.
    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        RawCondvar {
            seq: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
        }
    }

    /// Registers the caller as a waiter. Call while holding the mutex the condition is
    /// guarded by, then release it and [`sleep`](RawCondvar::sleep).
    pub(crate) fn register(&self) -> Ticket {
        self.waiters.fetch_add(1, Relaxed);
        Ticket(self.seq.load(Relaxed))
    }

    /// Sleeps until a notify after the registration, or the deadline; then unregisters.
    /// Signals (`EINTR`) and wake-ups that leave `seq` as it was go back to sleep.
    pub(crate) fn sleep(&self, ticket: Ticket, deadline: Deadline) -> Woke {
        let woke = loop {
            if self.seq.load(Relaxed) != ticket.0 {
                break Woke::Notified;
            }
            let Ok(left) = deadline.left() else {
                break Woke::TimedOut;
            };
            futex_wait(&self.seq, ticket.0, left);
        };
        self.waiters.fetch_sub(1, Relaxed);
        woke
    }

    /// Wakes at most `n` sleepers (`i32::MAX`: all). Nobody registered: one load, no
    /// system call.
    #[inline]
    pub(crate) fn notify(&self, n: i32) {
        if self.waiters.load(Relaxed) == 0 {
            return;
        }
        self.notify_slow(n);
    }

    #[cold]
    fn notify_slow(&self, n: i32) {
        self.seq.fetch_add(1, Relaxed);
        futex_wake(&self.seq, n);
    }

    /// How many waiters are registered at this instant (killed ones included).
    pub(crate) fn waiters(&self) -> u32 {
        self.waiters.load(Relaxed)
    }

    /// The sequence number, for tests that check a notify changed nothing.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn seq(&self) -> u32 {
        self.seq.load(Relaxed)
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! Every interleaving of waits and notifies under a mutex: a waiter whose condition was
    //! made true and notified always returns (loom reports a waiter left asleep as a
    //! deadlock), and a timed waiter that gives up takes no wake-up from another.

    use super::*;
    use loom::sync::{Arc, Mutex};
    use loom::thread;

    fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(f);
    }

    /// Waits under `m` until `*m >= want`, then takes `want` away: a condition variable's
    /// `wait_while` over the model mutex.
    fn wait_for_tokens(cv: &RawCondvar, m: &Mutex<u32>, want: u32) {
        let mut g = m.lock().unwrap();
        while *g < want {
            let t = cv.register();
            drop(g);
            let _ = cv.sleep(t, Deadline::NEVER);
            g = m.lock().unwrap();
        }
        *g -= want;
    }

    #[test]
    fn a_notify_under_the_mutex_wakes_the_waiter() {
        model(|| {
            let s = Arc::new((RawCondvar::new(), Mutex::new(0u32)));
            let s2 = Arc::clone(&s);
            let waiter = thread::spawn(move || wait_for_tokens(&s2.0, &s2.1, 1));
            *s.1.lock().unwrap() += 1;
            s.0.notify(1);
            waiter.join().unwrap();
        });
    }

    #[test]
    fn a_notify_after_the_unlock_wakes_the_waiter() {
        model(|| {
            let s = Arc::new((RawCondvar::new(), Mutex::new(0u32)));
            let s2 = Arc::clone(&s);
            let waiter = thread::spawn(move || wait_for_tokens(&s2.0, &s2.1, 1));
            {
                *s.1.lock().unwrap() += 1;
            }
            s.0.notify(1);
            waiter.join().unwrap();
        });
    }

    #[test]
    fn two_notify_ones_reach_two_waiters() {
        model(|| {
            let s = Arc::new((RawCondvar::new(), Mutex::new(0u32)));
            let waiters: Vec<_> = (0..2)
                .map(|_| {
                    let s = Arc::clone(&s);
                    thread::spawn(move || wait_for_tokens(&s.0, &s.1, 1))
                })
                .collect();
            for _ in 0..2 {
                *s.1.lock().unwrap() += 1;
                s.0.notify(1);
            }
            for w in waiters {
                w.join().unwrap();
            }
            assert_eq!(*s.1.lock().unwrap(), 0);
            assert_eq!(s.0.waiters(), 0);
        });
    }

    #[test]
    fn one_notify_all_reaches_every_waiter() {
        model(|| {
            let s = Arc::new((RawCondvar::new(), Mutex::new(0u32)));
            let waiters: Vec<_> = (0..2)
                .map(|_| {
                    let s = Arc::clone(&s);
                    thread::spawn(move || wait_for_tokens(&s.0, &s.1, 1))
                })
                .collect();
            *s.1.lock().unwrap() += 2;
            s.0.notify(i32::MAX);
            for w in waiters {
                w.join().unwrap();
            }
            assert_eq!(s.0.waiters(), 0);
        });
    }

    #[test]
    fn a_timed_waiter_that_gives_up_leaves_the_wake_up_to_the_other() {
        model(|| {
            let s = Arc::new((RawCondvar::new(), Mutex::new(0u32)));
            let s1 = Arc::clone(&s);
            // A timed waiter: one registration, a sleep whose time runs out at once in the
            // model, then a look at the condition.
            let timed = thread::spawn(move || {
                let g = s1.1.lock().unwrap();
                if *g > 0 {
                    return false;
                }
                let t = s1.0.register();
                drop(g);
                let _ =
                    s1.0.sleep(t, Deadline::after(std::time::Duration::from_millis(1)));
                let mut g = s1.1.lock().unwrap();
                if *g > 0 {
                    *g -= 1;
                    return true;
                }
                false
            });
            let s2 = Arc::clone(&s);
            let untimed = thread::spawn(move || wait_for_tokens(&s2.0, &s2.1, 1));
            *s.1.lock().unwrap() += 1;
            s.0.notify(1);
            if timed.join().unwrap() {
                // The timed waiter took the token: the other needs one more.
                *s.1.lock().unwrap() += 1;
                s.0.notify(1);
            }
            untimed.join().unwrap();
            assert_eq!(*s.1.lock().unwrap(), 0);
        });
    }
}
