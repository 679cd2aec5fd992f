//! Where each lock was taken (cargo feature `lock-debug`): a `GenLock` carries the index of
//! its holder's `#[track_caller]` site in its region's site table (`shm/sites.rs`) and the
//! time it was taken (`lock_hooks::HeldAt`); this interns the site in the table, so another
//! process's report can name it.

use std::panic::Location;

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
    let (base, len, dev, ino) = crate::regions::region_of(addr)?;
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
