//! Setting up a backend's OS object in place, on first use, so that zero bytes are still a
//! usable (not yet initialised) lock wherever they are: in a zeroed region, in a struct
//! allocated with `alloc_zeroed`, in a lock set.
//!
//! The state word is 0 (not set up), `READY`, or the owner id (`crate::liveness`) of the
//! thread setting it up. The
//! set-up can fail (a panic: the system refused the semaphore, say) or its process can die
//! half-way; neither may leave the others waiting for ever:
//! - a timed acquisition gives up at its deadline while another (a stopped process, say)
//!   is still setting up (`ensure_until`);
//! - a panicking initialiser puts the word back to 0 as it unwinds, so the next user tries
//!   again (and, if the cause persists, fails with the same clear message);
//! - a waiter asks the kernel now and then whether the initialiser's process is gone (died
//!   or called `exec`) and, if so, takes the set-up over.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::deadline::Deadline;

const UNINIT: u32 = 0;
const READY: u32 = u32::MAX;

/// The state word in front of an in-place OS object. Zero: not initialised yet.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct InitOnce(AtomicU32);

impl InitOnce {
    pub(crate) const fn new() -> Self {
        InitOnce(AtomicU32::new(UNINIT))
    }

    /// Runs `init` once across all processes that map this word; everybody else waits
    /// until it has finished. If `init` panics, the word is reset and the panic goes on.
    #[inline]
    pub(crate) fn ensure(&self, init: impl FnOnce()) {
        if self.0.load(Ordering::Acquire) != READY {
            let done = self.slow(init, None);
            debug_assert!(done, "an untimed wait does not give up");
        }
    }

    /// [`ensure`](Self::ensure), giving up at `deadline` while another thread or process
    /// (a stopped one, say) is still setting the object up: `false` then.
    #[inline]
    pub(crate) fn ensure_until(&self, deadline: Deadline, init: impl FnOnce()) -> bool {
        self.0.load(Ordering::Acquire) == READY || self.slow(init, Some(deadline))
    }

    #[cold]
    fn slow(&self, init: impl FnOnce(), deadline: Option<Deadline>) -> bool {
        let addr = self as *const Self as usize;
        let me = crate::liveness::id_at(addr);
        let mut seen = self.0.load(Ordering::Acquire);
        let mut waited = 0u32;
        loop {
            if seen == READY {
                return true;
            }
            // Asked now and then, and once more before a timed attempt gives up (so that
            // `try_lock`, whose deadline is now, takes over a dead initialiser's set-up).
            let expired = deadline.is_some_and(|d| d.left().is_err());
            let dead_initialiser = seen != UNINIT
                && seen != me
                && (waited % 64 == 63 || expired)
                && crate::liveness::holder_gone(addr, seen);
            if seen == UNINIT || dead_initialiser {
                match self
                    .0
                    .compare_exchange(seen, me, Ordering::Acquire, Ordering::Acquire)
                {
                    Ok(_) => {
                        let undo =
                            scopeguard::guard((), |()| self.0.store(UNINIT, Ordering::Release));
                        init();
                        scopeguard::ScopeGuard::into_inner(undo);
                        self.0.store(READY, Ordering::Release);
                        return true;
                    }
                    Err(now) => {
                        seen = now;
                        continue;
                    }
                }
            }
            // Another process is initialising: it takes microseconds. Yield first, then
            // sleep, so a slow initialiser is not starved of the core.
            let left = match deadline.map(|d| d.left()) {
                Some(Err(_)) => return false,
                Some(Ok(left)) => left,
                None => None,
            };
            if waited < 64 {
                std::thread::yield_now();
            } else {
                let nap = Duration::from_micros(200);
                std::thread::sleep(left.map_or(nap, |l| l.min(nap)));
            }
            waited = waited.wrapping_add(1);
            seen = self.0.load(Ordering::Acquire);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::panic::{catch_unwind, AssertUnwindSafe};

    #[test]
    fn a_failed_initialisation_is_tried_again_by_the_next_user() {
        let once = InitOnce::new();
        let r = catch_unwind(AssertUnwindSafe(|| once.ensure(|| panic!("no semaphores"))));
        assert!(r.is_err());
        let mut ran = false;
        once.ensure(|| ran = true);
        assert!(
            ran,
            "the second user ran the set-up instead of waiting for ever"
        );
    }
}
