//! Where each group-lock reference was taken (with the `grp-debug` feature), so a leaked
//! reference can be found by its `file:line:column` (PJLIB's `PJ_GRP_LOCK_DEBUG`, which
//! matched holders by file only).
//!
//! Without the feature this is all zero-sized and free.

#[cfg(feature = "grp-debug")]
mod on {
    use std::collections::BTreeMap;
    use std::fmt::Write;
    use std::panic::Location;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    use std::sync::Mutex;

    pub(crate) type RefId = u64;

    pub(crate) struct Refs {
        next: AtomicU64,
        live: Mutex<BTreeMap<u64, &'static Location<'static>>>,
    }

    impl Refs {
        pub(crate) fn new() -> Self {
            Refs {
                next: AtomicU64::new(0),
                live: Mutex::new(BTreeMap::new()),
            }
        }

        fn live(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, &'static Location<'static>>> {
            self.live.lock().unwrap_or_else(|e| e.into_inner())
        }

        #[track_caller]
        pub(crate) fn record(&self) -> RefId {
            let id = self.next.fetch_add(1, Relaxed);
            self.live().insert(id, Location::caller());
            id
        }

        pub(crate) fn forget(&self, id: RefId) {
            self.live().remove(&id);
        }

        /// Appends one line per live reference, oldest first. Takes a snapshot first, so it
        /// never calls back into anything while holding the table.
        pub(crate) fn describe(&self, out: &mut String) {
            let snapshot: Vec<_> = self.live().values().copied().collect();
            for loc in snapshot {
                let _ = writeln!(out, "  reference taken at {loc}");
            }
        }
    }
}

#[cfg(not(feature = "grp-debug"))]
mod on {
    #[derive(Clone, Copy)]
    pub(crate) struct RefId {
        _none: (),
    }

    pub(crate) struct Refs {
        _none: (),
    }

    impl Refs {
        pub(crate) fn new() -> Self {
            Refs { _none: () }
        }
        #[track_caller]
        pub(crate) fn record(&self) -> RefId {
            RefId { _none: () }
        }
        pub(crate) fn forget(&self, _: RefId) {}
        pub(crate) fn describe(&self, out: &mut String) {
            out.push_str("  (build with the grp-debug feature to see where each was taken)\n");
        }
    }
}

pub(crate) use on::{RefId, Refs};
