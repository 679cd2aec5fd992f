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
//!     let _stripe = stripes.lock_key("sip:alice@example.org");
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
//! - [`RwLock`] (many readers or one writer, with its data); [`GenRwLock`] /
//!   [`GenRwLockSet`], its data-less forms, for read-mostly `#[shared_locked]` tables.
//! - [`raw`]: the lock algorithms.
//! - [`ShmCondvar`]: a condition variable that waits with those locks' guards.
//! - [`ShmStr`] / [`ShmBytes`]: strings and byte strings of a fixed capacity, stored inline.
//! - [`workers`]: fork workers that die with the parent, reap them, and see which locks a
//!   dead one held.
//! - [`ShmSafe`]: which types may live in shared memory; [`layout`]: how programs agree on
//!   their layouts.
//!
//! ## Sizing a region, and its limits
//! [`RegionSize`] counts what a region will hold (objects, lock sets, roots) and gives the
//! size to create it with, block headers, alignment and the region's tables included. A
//! region has at most 32 named roots (names of up to 31 bytes); its type registry takes
//! 1/64 of it (4 KiB to 1 MiB), and with `lock-debug` its lock-order table (64 to 4096 lock
//! pairs) and its lock-site table (32 to 2048 sites) 1/128 each; a process maps at most 64
//! regions at once. See [`RegionSize`] for the details.
//!
//! ## Layers
//! Each module uses only modules of the layers below its own (`tests/layers.rs` checks it), so
//! the primitives can be read, and changed, without the regions or the diagnostics:
//!
//! | layer | modules | what they hold |
//! |---|---|---|
//! | 0 | `sys`, `regions`, `error`, [`layout`] | system calls (futex, clock, tid); the table of this process's mapped regions; errors; type layouts |
//! | 1 | `deadline`, `liveness`, `shm_safe`, `lock_hooks` | deadlines; owner ids and the kernel's proof of an owner's death; which types may live in shared memory; the hooks a lock calls for the diagnostics |
//! | 2 | `model`, [`raw`] | the atomics and futex calls (or their loom models); the lock algorithms |
//! | 3 | `gen_lock`, `rec_lock`, `rw_lock`, `semaphore`, `lock_set`, `shm_mutex`, `condvar`, `shm_str` | the primitives; the condition variable; inline strings and bytes |
//! | 4 | [`shm`] | regions: mapping, header, allocator, type registry, roots |
//! | 5 | `lock_debug`, [`report`], `lock_order` | diagnostics that read regions |
//! | 6 | [`grp`], `lockable`, `__private`, [`workers`] | the group lock; what `locked!` and the macros' code call; forked workers and their supervision |
//!
//! The primitives reach the diagnostics only through `lock_hooks` (feature `lock-debug`), as
//! Linux's locks reach lockdep through `lock_acquire`: the hooks know nothing of who listens,
//! and the crate root binds the listener (`LockObserver`, the lock-order checker).
//!
//! ## Fork
//! Handles are plain values: `fork` copies them into the child, and the child uses the same
//! shared objects. Dropping handles never frees shared memory (freeing is explicit), and only
//! the creator of a named region unlinks its name, so a child can drop what it inherited or
//! exit at any time. A guard the child inherited does not release its parent's lock when the
//! child drops it: only the thread that took a lock releases it.
//!
//! Each lock word names its holder by an owner id that is never handed out twice; glibc's
//! `fork` gives the child new ids (and its own hold on them) in a fork handler. A process made
//! by a raw `clone(2)` or by glibc's `_Fork` runs no fork handlers and must call
//! [`refresh_thread_ids`] before it takes a lock.

#![deny(unsafe_op_in_unsafe_fn)]
// docs.rs (and `RUSTDOCFLAGS="--cfg docsrs" cargo +nightly doc --all-features`) marks each
// item that needs a feature with the feature's name.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

mod condvar;
mod deadline;
mod error;
mod gen_lock;
pub mod grp;
pub mod layout;
mod liveness;
#[cfg(feature = "lock-debug")]
mod lock_debug;
#[cfg(feature = "lock-debug")]
mod lock_hooks;
#[cfg(feature = "lock-debug")]
#[cfg_attr(docsrs, doc(cfg(feature = "lock-debug")))]
pub mod lock_order;
mod lock_set;
mod lockable;
mod model;
pub mod raw;
mod rec_lock;
mod regions;
pub mod report;
mod rw_lock;
mod semaphore;
pub mod shm;
mod shm_mutex;
mod shm_safe;
mod shm_str;
mod sys;
pub mod workers;

pub use __private::{StripeGuard, StripeReadGuard, StripeWriteGuard};
pub use condvar::{CondvarGuard, ShmCondvar, WaitTimeoutResult};
pub use error::{Error, Result};
pub use gen_lock::{GenLock, GenLockGuard};
pub use grp::GrpLock;
pub use liveness::{refresh_thread_ids, Owner};
pub use lock_set::{GenLockSet, LockSet, PaddedLock, SET_ENTRY_BYTES};
pub use lockable::Lockable;
pub use rec_lock::{RecLock, RecLockGuard};
pub use rw_lock::{GenRwLock, GenRwLockSet, PaddedRwLock, ReadGuard, RwLock, WriteGuard};
pub use semaphore::ShmSemaphore;
pub use shm::{RegionOptions, RegionSize, RegionStats, ShmBox, ShmLockSet, ShmPtr, ShmRegion};
pub use shm_mutex::{ShmMutex, ShmMutexGuard};
pub use shm_safe::{ShmSafe, ShmZeroable};
pub use shm_str::{ShmBytes, ShmStr};

pub use lockkit_macros::{grp_member, locked, shared_locked, ShmSafe};

/// The backend (lock algorithm) of lock type `L`: [`raw::Futex`] for `GenLock` and
/// `GenLockSet<N>`, `R` for `GenLock<R>` and `GenLockSet<N, R>`. The accessors
/// `#[shared_locked]` generates name their guards' backend with it.
///
/// ```
/// use lockkit::{raw, BackendOf, GenLock, GenLockSet};
///
/// let _: std::marker::PhantomData<BackendOf<GenLock>> =
///     std::marker::PhantomData::<raw::Futex>;
/// let _: std::marker::PhantomData<BackendOf<GenLockSet<4, raw::Spin>>> =
///     std::marker::PhantomData::<raw::Spin>;
/// ```
pub type BackendOf<L> = <L as __private::LockKind>::Raw;

/// `lock_api`, re-exported for `lock_api::Mutex<lockkit::raw::Futex, T>` (feature
/// `lock-api`).
///
/// # Why `lock_api::Mutex<Futex, T>` is not `ShmSafe`
/// It works in process memory, but it cannot be placed in a region, and lockkit does not
/// implement [`ShmSafe`] for it (the orphan rule leaves that to lockkit):
/// - it is a plain Rust struct, not `#[repr(C)]`: the compiler chooses where its lock and
///   its data go, and another build (another rustc, other flags) may choose differently, so
///   two programs attached to one region could disagree on where the lock ends and the data
///   starts; its fields are private, so lockkit cannot describe its layout for that to be
///   checked (as it does for every `ShmSafe` type);
/// - its `lock()` cannot tell the caller that the previous holder died in the middle of an
///   update: the next holder would get half-updated data without a word.
///
/// [`ShmMutex<T>`](ShmMutex) is that type for shared memory: a futex lock word and the data
/// in a `#[repr(C)]` struct, whose guard says when the previous owner died.
#[cfg(feature = "lock-api")]
#[cfg_attr(docsrs, doc(cfg(feature = "lock-api")))]
pub use lock_api;

/// The diagnostics that listen to the locks' hooks (`lock_hooks`), bound here at the root so
/// that the locks, below the regions these diagnostics read, need not know them.
#[cfg(feature = "lock-debug")]
type LockObserver = lock_order::Checker;

/// Runtime items for the code the macros generate; not part of the API.
#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

// Lets code generated by the macros name `::lockkit` inside this crate's own tests too.
extern crate self as lockkit;

// SAFETY: by the RawLock contract the algorithm holds no process-local pointer and works in
// shared memory.
unsafe impl<R: raw::RawLock> ShmSafe for GenLock<R> {
    const LAYOUT: &'static layout::TypeLayout =
        &layout::TypeLayout::opaque::<Self>(gen_lock::LAYOUT_ID, R::LAYOUT_NAME);
}
// SAFETY: by the RawLock contract zero bytes are `INIT`, an unlocked lock.
unsafe impl<R: raw::RawLock> ShmZeroable for GenLock<R> {}

/// The README's examples, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
