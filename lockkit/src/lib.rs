//! # lockkit
//!
//! Locks that work between processes, for servers that keep their state in shared memory
//! (SIP proxies, media servers, pre-forked workers). A parent maps a [`ShmRegion`], allocates
//! shared tables guarded by [`GenLock`]s, [`ShmMutex`]es and lock sets in it, and forks its
//! workers; or unrelated processes attach to a named region.
//!
//! Every lock hands out a guard that releases on drop, so the classic C failure, a lock taken
//! and never released on an error path, cannot be written.
//!
//! ```
//! use lockkit::{GenLockSet, ShmMutex, ShmRegion};
//!
//! let region = ShmRegion::anonymous(1 << 20)?;
//! let total = region.alloc(ShmMutex::new(0u64))?;
//! let stripes = region.alloc_zeroed::<GenLockSet<16>>()?;
//!
//! // In a real server, fork workers here; each does the same.
//! {
//!     let _stripe = stripes.lock_for("sip:alice@example.org");
//!     *total.lock() += 1;
//! } // both locks released here, on every path
//! assert_eq!(*total.lock(), 1);
//! # Ok::<(), lockkit::Error>(())
//! ```
//!
//! ## Modules and types
//! - [`shm`]: regions, the allocator ([`ShmRegion::alloc`], [`ShmRegion::free`]), [`ShmBox`],
//!   [`ShmPtr`] links, named roots.
//! - [`GenLock`] (Kamailio's `gen_lock_t`), [`ShmMutex`] (a lock with its data),
//!   [`GenLockSet`] / [`ShmLockSet`] (`gen_lock_set_t`), all zero-initialised = unlocked.
//! - [`raw`]: the lock algorithms.
//! - [`ShmSafe`]: which types may live in shared memory.
//!
//! ## Fork
//! Handles are plain values: `fork` copies them into the child, and the child uses the same
//! shared objects. Dropping handles never frees shared memory (freeing is explicit), and only
//! the creator of a named region unlinks its name, so a child can drop what it inherited or
//! exit at any time.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod error;
mod gen_lock;
pub mod grp;
mod lock_set;
pub mod raw;
pub mod shm;
mod shm_mutex;
mod shm_safe;
mod sys;

pub use error::{Error, Result};
pub use gen_lock::{GenLock, GenLockGuard, Owner};
pub use grp::GrpLock;
pub use lock_set::{GenLockSet, LockSet, PaddedLock};
pub use shm::{RegionStats, ShmBox, ShmLockSet, ShmPtr, ShmRegion};
pub use shm_mutex::{ShmMutex, ShmMutexGuard};
pub use shm_safe::{ShmSafe, ShmZeroable};

// SAFETY: a RawFutex is two atomics.
unsafe impl ShmSafe for GenLock {}
// SAFETY: zero bytes are an unlocked lock.
unsafe impl ShmZeroable for GenLock {}

/// The README's examples, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
