//! Who holds what: a report of the locks in a region that are held, waited for, or left
//! inconsistent by a holder that died, readable by another process without taking any lock
//! (so it works while the application is wedged).
//!
//! The locks are found through the region's type registry (see [`layout`](crate::layout)):
//! every live object's type is described there, field by field, and lockkit's locks are
//! recognisable in the descriptions, wherever they are nested (a `#[shared_locked]` struct's
//! locks, a lock set's stripes, arrays of structs with locks, runtime lock sets). Objects
//! are named by the root they are published under, fields by their path in the object.
//!
//! ```
//! use lockkit::{shared_locked, GenLock, ShmRegion};
//!
//! #[shared_locked]
//! struct Registrar {
//!     calls: GenLock,
//!     #[guarded_by(calls)]
//!     active: u64,
//! }
//!
//! let region = ShmRegion::anonymous(1 << 16)?;
//! let reg = region.alloc(Registrar::new(0))?;
//! region.publish("registrar", &reg)?;
//! let g = reg.lock_calls();
//! let report = region.report();
//! let held = &report.locks[0];
//! assert_eq!((held.object.as_str(), held.field.as_str()), ("registrar", "calls"));
//! assert_eq!(held.holder.unwrap().pid, std::process::id());
//! drop(g);
//! assert!(region.report().locks.is_empty());
//! # Ok::<(), lockkit::Error>(())
//! ```
//!
//! From another terminal, `lockkit-top /NAME` prints the same report (see
//! [`Inspector`]).

mod format;
pub(crate) mod group_refs;
mod inspect;
pub(crate) mod scan;

pub use inspect::Inspector;

use crate::Owner;

/// The locks of a region worth a look, and what the scan saw.
#[derive(Debug, Clone, Default)]
pub struct LockReport {
    /// Locks that are held, have waiters, or were left inconsistent, in region order.
    pub locks: Vec<LockInfo>,
    /// Live objects scanned.
    pub objects: usize,
    /// Live objects whose type the registry does not describe (it was full, or damaged):
    /// locks inside them cannot be found.
    pub undescribed: usize,
    /// Lock-order inversions recorded in the region by programs built with the `lock-debug`
    /// feature (the lock-order checker, `lockkit::lock_order`): each order of each inverted pair.
    pub inversions: Vec<OrderInversion>,
    /// With the `grp-debug` feature, the live group locks of the process that made the report
    /// (group locks live in process memory, so another process's inspector cannot see
    /// them), each with where every live reference was taken: a leaked reference shows as
    /// a line that should not be there (PJLIB's `pj_grp_lock_dump`, for every group at once).
    pub groups: Vec<GroupRefs>,
}

/// A live group lock and its references, in a [`LockReport`] (feature `grp-debug`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRefs {
    /// The group's serial number in its process (the order groups were made in).
    pub group: u64,
    /// Where each live reference was taken (`file:line:column`), oldest first.
    pub references: Vec<String>,
}

/// One order of a pair of locks that were taken both ways round: `taken` was taken while
/// `held` was held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderInversion {
    /// The lock that was held (`object.field`, `allocator`, or its offset).
    pub held: String,
    /// Where `held` had been taken, if recorded.
    pub held_at: Option<String>,
    /// The lock taken (or about to be waited for) while `held` was held.
    pub taken: String,
    /// Where.
    pub taken_at: Option<String>,
    /// The process and thread that took them in this order.
    pub pid: u32,
    /// See `pid`.
    pub tid: u32,
}

/// One lock in a [`LockReport`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LockInfo {
    /// What kind of lock: `GenLock<futex>`, `RwLock`, `RecLock`, `LockSet<spin>`.
    pub kind: String,
    /// The object it is in: the name it is published under, or `object@0x..` (its offset).
    pub object: String,
    /// Where in the object: a field path (`calls`, `stripes[3]`, `table[2].lock`), empty
    /// when the object is the lock.
    pub field: String,
    /// Its offset in the region.
    pub offset: u64,
    /// The holder (the writer, for an `RwLock`), if one is recorded.
    pub holder: Option<Owner>,
    /// Readers inside an `RwLock`.
    pub readers: u32,
    /// Whether a thread may be waiting for it.
    pub waiters: bool,
    /// Whether a holder died holding it and nobody has marked it consistent since.
    pub inconsistent: bool,
    /// Where the holder took it (`file:line:column`), when the program that took it was
    /// built with the `lock-debug` feature.
    pub site: Option<String>,
    /// How long it has been held, with `lock-debug`.
    pub held_for: Option<std::time::Duration>,
}

impl LockInfo {
    /// `object.field` (`object[i]` for an element of a runtime lock set), or the object
    /// alone.
    pub fn place(&self) -> String {
        if self.field.is_empty() {
            self.object.clone()
        } else if self.field.starts_with('[') {
            format!("{}{}", self.object, self.field)
        } else {
            format!("{}.{}", self.object, self.field)
        }
    }
}

impl crate::ShmRegion {
    /// The locks in this region that are held, waited for, or inconsistent (see the
    /// [`report`](crate::report) module), and with `grp-debug` this process's group locks
    /// and their references. Takes no lock of the region, not even the allocator's.
    pub fn report(&self) -> LockReport {
        #[allow(unused_mut)]
        let mut report = scan::scan(&self.view());
        #[cfg(feature = "grp-debug")]
        {
            report.groups = group_refs::live_groups();
        }
        report
    }
}
