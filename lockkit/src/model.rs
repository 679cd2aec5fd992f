//! The atomic word, the futex calls and the deadline that the reader-writer lock and the
//! semaphore protocols are written against: the real ones, or under `--cfg loom` a model of
//! them, so that `loom` runs the unchanged state machines and searches their interleavings.
//!
//! The model futex keeps the kernel's contract: `futex_wait` checks the word and queues the
//! caller as one step that no `futex_wake` can come between (the kernel does it under the
//! hash-bucket lock, the model under a mutex); `futex_wake(n)` wakes at most `n` queued
//! waiters of that word and returns how many. A timed wait is modelled as a wait whose time
//! runs out at once (see `crate::deadline`): it never sleeps, so give-up paths run without
//! modelling time.

#[cfg(not(loom))]
pub(crate) use crate::deadline::Deadline;
#[cfg(not(loom))]
pub(crate) use crate::liveness::{holder_gone, id_at};
#[cfg(not(loom))]
pub(crate) use crate::sys::{futex_wait, futex_wake};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::AtomicU32;

#[cfg(loom)]
pub(crate) use loom::sync::atomic::AtomicU32;
#[cfg(loom)]
pub(crate) use loom_futex::{futex_wait, futex_wake};
#[cfg(loom)]
#[allow(unused_imports)]
pub(crate) use loom_ids::{holder_gone, id_at};
#[cfg(loom)]
pub(crate) use loom_time::Deadline;

#[cfg(loom)]
mod loom_ids {
    //! Loom runs every model thread on one OS thread, so the kernel's thread id cannot tell
    //! them apart: each model thread gets its own small id instead.

    use std::cell::Cell;
    use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

    loom::lazy_static! {
        static ref NEXT: AtomicU32 = AtomicU32::new(1);
    }
    loom::thread_local! {
        static ID: Cell<u32> = Cell::new(0);
    }

    pub(crate) fn id_at(_addr: usize) -> u32 {
        ID.with(|id| {
            if id.get() == 0 {
                id.set(NEXT.fetch_add(1, Relaxed));
            }
            id.get()
        })
    }

    /// Model processes do not die.
    #[allow(dead_code)]
    pub(crate) fn holder_gone(_addr: usize, _owner: u32) -> bool {
        false
    }
}

#[cfg(loom)]
mod loom_time {
    //! Time does not pass in a loom model, so a finite deadline counts as already passed at
    //! its first check: a timed acquisition makes one attempt, registers as a waiter, and
    //! gives up, which is the give-up path the models must cover.

    use std::time::Duration;

    pub(crate) use crate::deadline::Expired;

    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Deadline {
        finite: bool,
    }

    impl Deadline {
        pub(crate) const NEVER: Deadline = Deadline { finite: false };

        pub(crate) fn after(_timeout: Duration) -> Deadline {
            Deadline { finite: true }
        }

        pub(crate) fn left(&self) -> Result<Option<Duration>, Expired> {
            if self.finite {
                Err(Expired)
            } else {
                Ok(None)
            }
        }
    }
}

#[cfg(loom)]
mod loom_futex {
    use std::sync::atomic::Ordering::SeqCst;
    use std::time::Duration;

    use loom::sync::{Condvar, Mutex};

    use super::AtomicU32;
    use crate::sys::Wake;

    #[derive(Default)]
    struct Queue {
        /// `(word address, ticket)` of every sleeper, in arrival order.
        sleeping: Vec<(usize, u64)>,
        /// Tickets woken and not yet collected by their sleepers.
        woken: Vec<u64>,
        next_ticket: u64,
    }

    loom::lazy_static! {
        static ref QUEUE: (Mutex<Queue>, Condvar) = (Mutex::new(Queue::default()), Condvar::new());
    }

    fn addr(word: &AtomicU32) -> usize {
        word as *const AtomicU32 as usize
    }

    pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Wake {
        let (lock, cv) = &*QUEUE;
        let mut q = lock.lock().unwrap();
        if word.load(SeqCst) != expected {
            return Wake::Retry;
        }
        if timeout.is_some() {
            return Wake::TimedOut;
        }
        let ticket = q.next_ticket;
        q.next_ticket += 1;
        q.sleeping.push((addr(word), ticket));
        loop {
            q = cv.wait(q).unwrap();
            if let Some(i) = q.woken.iter().position(|&t| t == ticket) {
                q.woken.swap_remove(i);
                return Wake::Retry;
            }
        }
    }

    pub(crate) fn futex_wake(word: &AtomicU32, n: i32) -> usize {
        let (lock, cv) = &*QUEUE;
        let mut q = lock.lock().unwrap();
        let a = addr(word);
        let mut woke = 0;
        let mut i = 0;
        while i < q.sleeping.len() && woke < n.max(0) as usize {
            if q.sleeping[i].0 == a {
                let (_, ticket) = q.sleeping.remove(i);
                q.woken.push(ticket);
                woke += 1;
            } else {
                i += 1;
            }
        }
        if woke > 0 {
            cv.notify_all();
        }
        woke
    }
}
