//! [`GenRwLock`] and [`GenRwLockSet`]: reader-writer locks that guard no data of their own,
//! for `#[shared_locked]` fields (`#[guarded_by]`, `#[striped_by]`), as [`GenLock`] and
//! [`GenLockSet`] are for exclusive ones.
//!
//! Both are [`RwLock<()>`]s, which keep their own invariants; the `unsafe impl`s here say
//! only that an `RwLock<()>` (padded, or in an array) may live in shared memory.
//!
//! [`GenLock`]: crate::GenLock
//! [`GenLockSet`]: crate::GenLockSet

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::time::Duration;

use super::{ReadGuard, RwLock, WriteGuard};
use crate::lock_set::StableHasher;
use crate::{ShmSafe, ShmZeroable};

/// A reader-writer lock that guards no data of its own: many readers or one writer, across
/// processes. What [`GenLock`](crate::GenLock) is to exclusive locking.
///
/// Its place is a `#[shared_locked]` struct, where `#[guarded_by]` fields are reached through
/// `read_<lock>()` (shared, `&T`) and `write_<lock>()` (exclusive, `&mut T`): lookups in a
/// table that is read far more often than it changes do not wait for each other. On its own it
/// is an [`RwLock<()>`], which it dereferences to. Zero bytes are an unlocked lock.
///
/// A writer whose process dies inside is recovered, and the next writer is told
/// ([`WriteGuard::owner_died`]); a reader that dies inside is not (readers are counted, not
/// named), as for every [`RwLock`].
///
/// ```
/// use lockkit::{shared_locked, GenRwLock, ShmRegion};
///
/// #[shared_locked]
/// pub struct Routes {
///     lock: GenRwLock,
///     #[guarded_by(lock)]
///     next_hop: [u32; 8],
/// }
///
/// let region = ShmRegion::anonymous(1 << 20)?;
/// let routes = region.alloc_zeroed::<Routes>()?;
/// routes.write_lock().next_hop[3] = 7; // one writer
/// let a = routes.read_lock(); // readers share
/// let b = routes.read_lock();
/// assert_eq!(a.next_hop[3] + b.next_hop[3], 14);
/// assert!(routes.try_write_lock().is_none()); // no writer while they read
/// # Ok::<(), lockkit::Error>(())
/// ```
#[repr(transparent)]
pub struct GenRwLock(RwLock<()>);

impl GenRwLock {
    /// An unlocked lock.
    ///
    /// ```
    /// let lock = lockkit::GenRwLock::new();
    /// let _r = lock.read();
    /// assert!(lock.try_write().is_none());
    /// ```
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        GenRwLock(RwLock::new(()))
    }

    /// An unlocked lock.
    #[cfg(loom)]
    pub fn new() -> Self {
        GenRwLock(RwLock::new(()))
    }
}

impl Default for GenRwLock {
    fn default() -> Self {
        Self::new()
    }
}

impl Deref for GenRwLock {
    type Target = RwLock<()>;
    fn deref(&self) -> &RwLock<()> {
        &self.0
    }
}

impl fmt::Debug for GenRwLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

// SAFETY: an RwLock<()>, laid out as one (repr(transparent)).
unsafe impl ShmSafe for GenRwLock {
    const LAYOUT: &'static crate::layout::TypeLayout = <RwLock<()> as ShmSafe>::LAYOUT;
}
// SAFETY: zero bytes are an unlocked RwLock<()>.
unsafe impl ShmZeroable for GenRwLock {}

/// One lock of a [`GenRwLockSet`], alone on its cache line (as [`PaddedLock`] is).
///
/// [`PaddedLock`]: crate::PaddedLock
#[cfg_attr(
    any(target_arch = "x86_64", target_arch = "aarch64"),
    repr(C, align(128))
)]
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    repr(C, align(64))
)]
pub struct PaddedRwLock(GenRwLock);

impl PaddedRwLock {
    /// An unlocked entry.
    ///
    /// ```
    /// let entry = lockkit::PaddedRwLock::new();
    /// assert_eq!(std::mem::size_of_val(&entry), lockkit::SET_ENTRY_BYTES);
    /// ```
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        PaddedRwLock(GenRwLock::new())
    }

    /// An unlocked entry.
    #[cfg(loom)]
    pub fn new() -> Self {
        PaddedRwLock(GenRwLock::new())
    }
}

impl Default for PaddedRwLock {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: a GenRwLock plus padding.
unsafe impl ShmSafe for PaddedRwLock {
    // The lock's own fields at offset 0, in the padded size: the lock report names an entry
    // `stripes[7]`, as it names a `GenLockSet`'s, rather than `stripes[7].lock`.
    const LAYOUT: &'static crate::layout::TypeLayout = &crate::layout::TypeLayout::of_fields::<Self>(
        "PaddedRwLock",
        match GenRwLock::LAYOUT.shape {
            crate::layout::Shape::Struct { fields } => fields,
            _ => panic!("an RwLock's layout lists its fields"),
        },
    );
}
// SAFETY: zero bytes are an unlocked GenRwLock.
unsafe impl ShmZeroable for PaddedRwLock {}

/// `N` reader-writer locks stored inline, each on its own cache line: the set a
/// `#[striped_by]` field is spread over when lookups dominate (element `i` is guarded by
/// lock `i % N`). What [`GenLockSet`](crate::GenLockSet) is to exclusive locking. Zero bytes
/// are a set of unlocked locks.
///
/// ```
/// use lockkit::{GenRwLockSet, ShmRegion};
///
/// let region = ShmRegion::anonymous(1 << 20)?;
/// let set = region.alloc_zeroed::<GenRwLockSet<16>>()?;
/// let i = set.index_for("sip:alice@example.org");
/// let r1 = set.read(i);
/// let r2 = set.read(i); // readers share a stripe
/// assert!(set.try_write(i).is_none()); // a writer waits for them
/// drop((r1, r2));
/// let _w = set.write(i);
/// assert!(set.try_read(i).is_none());
/// assert!(set.get(16).is_none()); // the checked form of indexing
/// # Ok::<(), lockkit::Error>(())
/// ```
#[repr(C)]
pub struct GenRwLockSet<const N: usize> {
    locks: [PaddedRwLock; N],
}

impl<const N: usize> GenRwLockSet<N> {
    /// A set of `N` unlocked locks. `N` must be at least 1 (checked at compile time).
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        const { assert!(N > 0, "a lock set needs at least one lock") };
        GenRwLockSet {
            locks: [const { PaddedRwLock::new() }; N],
        }
    }

    /// A set of `N` unlocked locks.
    #[cfg(loom)]
    pub fn new() -> Self {
        const { assert!(N > 0, "a lock set needs at least one lock") };
        GenRwLockSet {
            locks: std::array::from_fn(|_| PaddedRwLock::new()),
        }
    }

    /// The number of locks in the set (`N`).
    ///
    /// ```
    /// assert_eq!(lockkit::GenRwLockSet::<8>::new().len(), 8);
    /// ```
    pub const fn len(&self) -> usize {
        N
    }

    /// Whether the set has no locks (never true for a set lockkit built).
    pub const fn is_empty(&self) -> bool {
        N == 0
    }

    /// Lock `i`, or `None` if `i >= len()` (the checked form of indexing).
    pub fn get(&self, i: usize) -> Option<&GenRwLock> {
        self.locks.get(i).map(|p| &p.0)
    }

    /// Lock `i`.
    ///
    /// ```
    /// let set = lockkit::GenRwLockSet::<4>::new();
    /// let _w = set.at(2).write();
    /// assert!(set[2].try_read().is_none()); // `set[i]` is `set.at(i)`
    /// ```
    ///
    /// # Panics
    /// If `i >= len()`, naming both.
    #[track_caller]
    pub fn at(&self, i: usize) -> &GenRwLock {
        match self.get(i) {
            Some(l) => l,
            None => out_of_range(i, N),
        }
    }

    /// Shared access to lock `i` (see [`RwLock::read`]).
    ///
    /// # Panics
    /// If `i >= len()`, or if this thread holds lock `i` as a writer.
    #[track_caller]
    pub fn read(&self, i: usize) -> ReadGuard<'_, ()> {
        self.at(i).read()
    }

    /// Shared access to lock `i` if no writer is inside or waiting.
    ///
    /// # Panics
    /// If `i >= len()`.
    #[track_caller]
    pub fn try_read(&self, i: usize) -> Option<ReadGuard<'_, ()>> {
        self.at(i).try_read()
    }

    /// Shared access to lock `i`, waiting at most `timeout`.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let set = lockkit::GenRwLockSet::<4>::new();
    /// let w = set.write(1);
    /// assert!(set.try_read_for(1, Duration::from_millis(1)).is_none());
    /// drop(w);
    /// assert!(set.try_read_for(1, Duration::from_millis(1)).is_some());
    /// ```
    ///
    /// # Panics
    /// If `i >= len()`.
    #[track_caller]
    pub fn try_read_for(&self, i: usize, timeout: Duration) -> Option<ReadGuard<'_, ()>> {
        self.at(i).try_read_for(timeout)
    }

    /// Exclusive access to lock `i` (see [`RwLock::write`]).
    ///
    /// # Panics
    /// If `i >= len()`, or if this thread holds lock `i` as a writer.
    #[track_caller]
    pub fn write(&self, i: usize) -> WriteGuard<'_, ()> {
        self.at(i).write()
    }

    /// Exclusive access to lock `i` if nobody is inside.
    ///
    /// # Panics
    /// If `i >= len()`.
    #[track_caller]
    pub fn try_write(&self, i: usize) -> Option<WriteGuard<'_, ()>> {
        self.at(i).try_write()
    }

    /// Exclusive access to lock `i`, waiting at most `timeout`.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let set = lockkit::GenRwLockSet::<4>::new();
    /// let r = set.read(3);
    /// assert!(set.try_write_for(3, Duration::from_millis(1)).is_none());
    /// drop(r);
    /// assert!(set.try_write_for(3, Duration::from_millis(1)).is_some());
    /// ```
    ///
    /// # Panics
    /// If `i >= len()`.
    #[track_caller]
    pub fn try_write_for(&self, i: usize, timeout: Duration) -> Option<WriteGuard<'_, ()>> {
        self.at(i).try_write_for(timeout)
    }

    /// The index that `key` maps to: the same hash as [`LockSet::index_for`], the same in
    /// every process and every run.
    ///
    /// [`LockSet::index_for`]: crate::LockSet::index_for
    pub fn index_for<K: Hash + ?Sized>(&self, key: &K) -> usize {
        let mut h = StableHasher::new();
        key.hash(&mut h);
        (h.finish() % N as u64) as usize
    }

    /// The locks, in index order.
    ///
    /// ```
    /// let set = lockkit::GenRwLockSet::<4>::new();
    /// let _r = set.read(0);
    /// let readers: Vec<Option<u32>> = set.iter().map(|l| l.readers()).collect();
    /// assert_eq!(readers, [Some(1), Some(0), Some(0), Some(0)]);
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = &GenRwLock> {
        self.locks.iter().map(|p| &p.0)
    }
}

impl<const N: usize> Default for GenRwLockSet<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// `set[i]` is lock `i`, so `locked!(read set[i] => ..)` reads like indexing.
///
/// # Panics
/// If `i >= len()`, naming both.
impl<const N: usize> std::ops::Index<usize> for GenRwLockSet<N> {
    type Output = GenRwLock;
    #[track_caller]
    fn index(&self, i: usize) -> &GenRwLock {
        self.at(i)
    }
}

impl<const N: usize> fmt::Debug for GenRwLockSet<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

// SAFETY: an array of GenRwLocks, each padded.
unsafe impl<const N: usize> ShmSafe for GenRwLockSet<N> {
    const LAYOUT: &'static crate::layout::TypeLayout = &crate::layout::TypeLayout::sized::<Self>(
        "GenRwLockSet",
        crate::layout::Shape::Array {
            elem: PaddedRwLock::LAYOUT,
            len: N,
        },
    );
}
// SAFETY: zero bytes are N unlocked locks.
unsafe impl<const N: usize> ShmZeroable for GenRwLockSet<N> {}

#[cold]
#[track_caller]
fn out_of_range(i: usize, len: usize) -> ! {
    panic!("lock set index out of range: the index is {i} but the set has {len} locks")
}
