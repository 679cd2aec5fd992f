//! Where and since when each lock was taken (cargo feature `lock-debug`): every `GenLock`
//! carries the index of its holder's `#[track_caller]` site in its region's site table
//! (`shm/sites.rs`) and the time it was taken, in shared memory, so another process's report
//! can say "taken at src/registrar.rs:88:21, held for 12.4 s".
//!
//! A lock outside any region records nothing (there is no table to name its site in). The
//! time is `CLOCK_MONOTONIC_COARSE`, which every process on the machine shares, at the
//! kernel tick's resolution (hold times are for spotting locks held for seconds). The words are
//! written by the holder right after it takes the lock; a report read in between sees the
//! previous holder's.

use std::panic::Location;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

/// The debug words of a lock. Zero: nothing recorded.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct HeldAt {
    /// 1 + the site's index in the region's table; 0 if unknown.
    site: AtomicU32,
    _pad: AtomicU32,
    /// `CLOCK_MONOTONIC` nanoseconds when it was taken.
    since: AtomicU64,
}

impl HeldAt {
    pub(crate) const fn new() -> Self {
        HeldAt {
            site: AtomicU32::new(0),
            _pad: AtomicU32::new(0),
            since: AtomicU64::new(0),
        }
    }

    /// Records that the calling thread took the lock these words belong to, at `at`.
    #[inline]
    pub(crate) fn record(&self, at: &'static Location<'static>) {
        let site = site_index(self as *const Self as usize, at).map_or(0, |i| i + 1);
        self.site.store(site, Relaxed);
        self.since.store(crate::sys::coarse_ns(), Relaxed);
    }
}

/// One entry of a thread's site cache: a site in one region, and its index there.
#[derive(Clone, Copy)]
struct Cached {
    site: usize,
    dev: u64,
    ino: u64,
    index: Option<u32>,
}

const CACHE: usize = 64;

thread_local! {
    /// Sites this thread met, direct-mapped by the site's address: no lock and no hashing
    /// in the lock path (a collision only costs a scan of the region's table), and a fork
    /// child keeps a consistent copy.
    static SITES: [std::cell::Cell<Option<Cached>>; CACHE] =
        const { [const { std::cell::Cell::new(None) }; CACHE] };
}

/// The index of `at` in the site table of the region holding `addr`, recorded there the
/// first time it is met.
pub(crate) fn site_index(addr: usize, at: &'static Location<'static>) -> Option<u32> {
    let (base, len, dev, ino) = crate::__private::regions::region_of(addr)?;
    let site = at as *const Location<'static> as usize;
    let slot = (site >> 3) % CACHE;
    // `try_with`: a lock taken while this thread's locals are being destroyed records no
    // site rather than panicking.
    let cached = SITES.try_with(|c| c[slot].get()).ok()?;
    if let Some(c) = cached.filter(|c| (c.site, c.dev, c.ino) == (site, dev, ino)) {
        return c.index;
    }
    let text = format!("{}:{}:{}", at.file(), at.line(), at.column());
    let index = crate::shm::view::View::with_registered(addr, (base, len, dev, ino), |view| {
        view.intern_site(&text)
    })
    .flatten();
    let _ = SITES.try_with(|c| {
        c[slot].set(Some(Cached {
            site,
            dev,
            ino,
            index,
        }))
    });
    index
}
