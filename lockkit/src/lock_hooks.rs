//! What a lock tells the diagnostics (cargo feature `lock-debug`): it is about to wait for a
//! lock, it took one, it released one, a group is gone, memory that held locks was freed.
//!
//! The locks call these hooks and know nothing of who listens, as Linux's locks call
//! lockdep's `lock_acquire` / `lock_release`; the listener (the lock-order checker and the
//! site recorder, which read regions) implements [`Observer`] and the crate root binds it
//! (`crate::LockObserver`). So the primitives sit below the regions and the diagnostics
//! that read them, and a reader can learn a lock without the checker. Without the feature
//! this module is not compiled and no lock carries a hook.

use std::panic::Location;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

/// What kind of lock an event is about, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum What {
    Lock,
    Group,
}

/// The listener of the hooks.
pub(crate) trait Observer {
    /// What [`Observer::before_wait`] saw the thread hold, handed back to
    /// [`Observer::acquired`].
    type Held: Copy;
    /// The calling thread is about to wait for the lock at `addr`.
    fn before_wait(addr: usize, what: What, site: &'static Location<'static>)
        -> Option<Self::Held>;
    /// The calling thread took the lock at `addr`: by waiting (`before` is what
    /// `before_wait` returned) or by a try (`None`).
    fn acquired(
        addr: usize,
        what: What,
        site: &'static Location<'static>,
        before: Option<Self::Held>,
    );
    /// The calling thread released the lock at `addr`.
    fn released(addr: usize);
    /// The group lock at `addr` is gone.
    fn group_gone(addr: usize);
    /// The memory at `start..end` of this process, in a region, was freed with the locks in
    /// it.
    fn freed(start: usize, end: usize);
    /// The index of `site` in the site table of the region holding `addr`, if any.
    fn site_index(addr: usize, site: &'static Location<'static>) -> Option<u32>;
}

type Bound = crate::LockObserver;

/// What the thread held before it waited; see [`Observer::Held`].
pub(crate) type Held = <Bound as Observer>::Held;

/// See [`Observer::before_wait`].
#[inline]
pub(crate) fn before_wait(
    addr: usize,
    what: What,
    site: &'static Location<'static>,
) -> Option<Held> {
    Bound::before_wait(addr, what, site)
}

/// See [`Observer::acquired`].
#[inline]
pub(crate) fn acquired(
    addr: usize,
    what: What,
    site: &'static Location<'static>,
    before: Option<Held>,
) {
    Bound::acquired(addr, what, site, before)
}

/// See [`Observer::released`].
#[inline]
pub(crate) fn released(addr: usize) {
    Bound::released(addr)
}

/// See [`Observer::group_gone`].
pub(crate) fn group_gone(addr: usize) {
    Bound::group_gone(addr)
}

/// See [`Observer::freed`].
pub(crate) fn freed(start: usize, end: usize) {
    Bound::freed(start, end)
}

/// The debug words of a lock: where and since when its holder took it, in shared memory, so
/// another process's report can say "taken at src/registrar.rs:88:21, held for 12.4 s".
/// Zero: nothing recorded.
///
/// A lock outside any region records no site (there is no table to name it in). The time is
/// `CLOCK_MONOTONIC_COARSE`, which every process on the machine shares, at the kernel tick's
/// resolution (hold times are for spotting locks held for seconds). The words are written by
/// the holder right after it takes the lock; a report read in between sees the previous
/// holder's.
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
        let site = Bound::site_index(self as *const Self as usize, at).map_or(0, |i| i + 1);
        self.site.store(site, Relaxed);
        self.since.store(crate::sys::coarse_ns(), Relaxed);
    }
}
