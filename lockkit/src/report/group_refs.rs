//! Where each group-lock reference was taken (with the `grp-debug` feature), so a leaked
//! reference can be found by its `file:line:column` (PJLIB's `PJ_GRP_LOCK_DEBUG`, which
//! matched holders by file only).
//!
//! Without the feature this is all zero-sized and free.
//!
//! The group lock records its references here, and the report lists them: the table is the
//! report's, so the report needs nothing of the group lock.

#[cfg(feature = "grp-debug")]
mod on {
    use std::collections::BTreeMap;
    use std::fmt::Write;
    use std::panic::Location;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    use std::sync::Mutex;

    use std::sync::Arc;

    pub(crate) type RefId = u64;

    type Table = Mutex<BTreeMap<u64, Site>>;

    /// Where a reference was taken.
    enum Site {
        /// The `#[track_caller]` location: the caller's line.
        At(&'static Location<'static>),
        /// A clone made inside the standard library (`vec![g; n]`, `Vec::resize`): its
        /// location is there, so the caller's line comes from a backtrace.
        Found(String),
    }

    impl std::fmt::Display for Site {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self {
                Site::At(l) => l.fmt(f),
                Site::Found(s) => f.write_str(s),
            }
        }
    }

    /// Whether `file` is a source of the standard library (`/rustc/<hash>/library/..` in
    /// rustup's toolchains, `library/..` in one built from source).
    fn in_std(file: &str) -> bool {
        file.starts_with("/rustc/")
            || ["library/alloc/", "library/core/", "library/std/"]
                .iter()
                .any(|d| file.starts_with(d) || file.contains(&format!("/{d}")))
    }

    /// The site of a reference whose `#[track_caller]` location `loc` is inside the
    /// standard library: the first frame of a backtrace outside it and outside lockkit.
    #[cold]
    fn site_outside_std(loc: &'static Location<'static>) -> Site {
        if !in_std(loc.file()) {
            return Site::At(loc);
        }
        let own = concat!(env!("CARGO_MANIFEST_DIR"), "/src/");
        let trace = std::backtrace::Backtrace::force_capture().to_string();
        let found = trace
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix("at "))
            .map(|at| at.strip_prefix("./").unwrap_or(at))
            .find(|at| !in_std(at) && !at.starts_with(own) && !at.starts_with("lockkit/src/"));
        Site::Found(match found {
            Some(at) => at.to_string(),
            None => format!(
                "{loc} (inside the standard library; a backtrace did not name the caller: build \
                 with debug info)"
            ),
        })
    }

    /// Every live group of the process, by its serial number: its table of references, for
    /// [`live_groups`] (shared, so that listing a group never holds a reference to it,
    /// whose release could be the last and run its handlers in the lister).
    static GROUPS: Mutex<BTreeMap<u64, Arc<Table>>> = Mutex::new(BTreeMap::new());

    fn groups() -> std::sync::MutexGuard<'static, BTreeMap<u64, Arc<Table>>> {
        GROUPS.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) struct Refs {
        group: u64,
        next: AtomicU64,
        live: Arc<Table>,
    }

    impl Refs {
        pub(crate) fn new(group: u64) -> Self {
            let live = Arc::new(Mutex::new(BTreeMap::new()));
            groups().insert(group, Arc::clone(&live));
            Refs {
                group,
                next: AtomicU64::new(0),
                live,
            }
        }

        fn live(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Site>> {
            self.live.lock().unwrap_or_else(|e| e.into_inner())
        }

        #[track_caller]
        pub(crate) fn record(&self) -> RefId {
            let id = self.next.fetch_add(1, Relaxed);
            let loc = Location::caller();
            let site = if in_std(loc.file()) {
                site_outside_std(loc)
            } else {
                Site::At(loc)
            };
            self.live().insert(id, site);
            id
        }

        pub(crate) fn forget(&self, id: RefId) {
            self.live().remove(&id);
        }

        /// Appends one line per live reference, oldest first. Takes a snapshot first, so it
        /// never calls back into anything while holding the table.
        pub(crate) fn describe(&self, out: &mut String) {
            let snapshot: Vec<String> = self.live().values().map(Site::to_string).collect();
            for loc in snapshot {
                let _ = writeln!(out, "  reference taken at {loc}");
            }
        }
    }

    impl Drop for Refs {
        fn drop(&mut self) {
            groups().remove(&self.group);
        }
    }

    /// The live groups of this process, oldest first, with where each live reference was
    /// taken (feature `grp-debug`).
    ///
    /// ```
    /// let group = lockkit::GrpLock::new();
    /// let groups = lockkit::grp::live_groups();
    /// assert!(groups.iter().any(|g| !g.references.is_empty()));
    /// # drop(group);
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "grp-debug")))]
    pub fn live_groups() -> Vec<super::super::GroupRefs> {
        let tables: Vec<(u64, Arc<Table>)> =
            groups().iter().map(|(&g, t)| (g, Arc::clone(t))).collect();
        tables
            .into_iter()
            .map(|(group, table)| super::super::GroupRefs {
                group,
                references: table
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .values()
                    .map(|l| l.to_string())
                    .collect(),
            })
            .collect()
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
        pub(crate) fn new(_group: u64) -> Self {
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

#[cfg(feature = "grp-debug")]
#[cfg_attr(docsrs, doc(cfg(feature = "grp-debug")))]
pub use on::live_groups;
pub(crate) use on::{RefId, Refs};
