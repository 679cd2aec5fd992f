//! Setting up a backend's OS object in place, on first use, so that zero bytes are still a
//! usable (not yet initialised) lock wherever they are: in a zeroed region, in a struct
//! allocated with `alloc_zeroed`, in a lock set.

use std::sync::atomic::{AtomicU32, Ordering};

const UNINIT: u32 = 0;
const BUSY: u32 = 1;
const READY: u32 = 2;

/// The state word in front of an in-place OS object. Zero: not initialised yet.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct InitOnce(AtomicU32);

impl InitOnce {
    pub(crate) const fn new() -> Self {
        InitOnce(AtomicU32::new(UNINIT))
    }

    /// Runs `init` exactly once across all processes that map this word; everybody else
    /// waits until it has finished.
    #[inline]
    pub(crate) fn ensure(&self, init: impl FnOnce()) {
        if self.0.load(Ordering::Acquire) != READY {
            self.slow(init);
        }
    }

    #[cold]
    fn slow(&self, init: impl FnOnce()) {
        match self
            .0
            .compare_exchange(UNINIT, BUSY, Ordering::Acquire, Ordering::Acquire)
        {
            Ok(_) => {
                init();
                self.0.store(READY, Ordering::Release);
            }
            Err(_) => {
                // Another process is initialising: it takes microseconds. (If it died in
                // that window the lock can never be used; a fresh region is the remedy.)
                while self.0.load(Ordering::Acquire) != READY {
                    std::thread::yield_now();
                }
            }
        }
    }
}
