//! Lock sets: Kamailio's `gen_lock_set_t`, an array of locks addressed by index or by key.
//!
//! Every entry has a cache line to itself, on x86_64 and aarch64 a pair of lines (128 bytes:
//! their prefetchers fetch lines in adjacent pairs, so two locks 64 bytes apart still move
//! between cores together; `cargo bench --bench stripes` measures both). With 16 locks
//! sharing a line, contended processes spend their time moving that line between cores
//! instead of in their critical sections.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::time::Duration;

use crate::raw::{Futex, RawLock};
use crate::{GenLock, GenLockGuard, ShmSafe, ShmZeroable};

/// One lock of a set, alone on its cache line ([`SET_ENTRY_BYTES`]).
#[cfg_attr(
    any(target_arch = "x86_64", target_arch = "aarch64"),
    repr(C, align(128))
)]
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    repr(C, align(64))
)]
pub struct PaddedLock<R: RawLock = Futex>(GenLock<R>);

/// The bytes each lock of a set takes: 128 on x86_64 and aarch64 (a pair of cache lines,
/// the unit their prefetchers move), 64 elsewhere.
pub const SET_ENTRY_BYTES: usize = std::mem::align_of::<PaddedLock>();

impl<R: RawLock> PaddedLock<R> {
    /// An unlocked entry.
    pub const fn with_backend() -> Self {
        PaddedLock(GenLock::with_backend())
    }
}

impl<R: RawLock> Default for PaddedLock<R> {
    fn default() -> Self {
        Self::with_backend()
    }
}

// SAFETY: a GenLock plus padding.
unsafe impl<R: RawLock> ShmSafe for PaddedLock<R> {
    const LAYOUT: &'static crate::layout::TypeLayout = &crate::layout::TypeLayout::opaque::<Self>(
        crate::gen_lock::PADDED_LAYOUT_ID,
        R::LAYOUT_NAME,
    );
}
// SAFETY: zero bytes are an unlocked GenLock.
unsafe impl<R: RawLock> ShmZeroable for PaddedLock<R> {}

/// The operations shared by every lock set, fixed-size ([`GenLockSet`]) or sized at run time
/// ([`ShmLockSet`](crate::ShmLockSet)); both dereference to it.
///
/// Indexing follows slice indexing: [`lock`](LockSet::lock) and the other index methods
/// panic when the index is out of range, [`get`](LockSet::get) returns `None`.
#[repr(transparent)]
pub struct LockSet<R: RawLock = Futex> {
    locks: [PaddedLock<R>],
}

impl<R: RawLock> LockSet<R> {
    pub(crate) fn from_slice(locks: &[PaddedLock<R>]) -> &LockSet<R> {
        // SAFETY: LockSet is repr(transparent) over [PaddedLock], so the fat pointer's layout
        // and metadata (the length) carry over unchanged.
        unsafe { &*(locks as *const [PaddedLock<R>] as *const LockSet<R>) }
    }

    /// The number of locks in the set.
    pub fn len(&self) -> usize {
        self.locks.len()
    }

    /// Whether the set has no locks (never true for a set lockkit built).
    pub fn is_empty(&self) -> bool {
        self.locks.is_empty()
    }

    /// Lock `i`, or `None` if `i >= len()` (the checked form of indexing).
    pub fn get(&self, i: usize) -> Option<&GenLock<R>> {
        self.set_up(None);
        self.locks.get(i).map(|p| &p.0)
    }

    /// Sets up a backend that sets up a whole set at once before the first lock is used;
    /// with a `timeout`, `false` if another thread or process is still at it after that.
    fn set_up(&self, timeout: Option<Duration>) -> bool {
        R::init_set(self.locks.iter().map(|p| p.0.raw()), timeout)
    }

    /// Lock `i` for a timed attempt: `None` when the set's set-up (by another thread or
    /// process, a stopped one say) did not finish within `timeout`.
    #[track_caller]
    fn at_within(&self, i: usize, timeout: Duration) -> Option<&GenLock<R>> {
        let Some(p) = self.locks.get(i) else {
            out_of_range(i, self.len())
        };
        self.set_up(Some(timeout)).then_some(&p.0)
    }

    /// Lock `i`.
    ///
    /// # Panics
    /// If `i >= len()`, naming both.
    #[track_caller]
    pub fn at(&self, i: usize) -> &GenLock<R> {
        match self.get(i) {
            Some(l) => l,
            None => out_of_range(i, self.len()),
        }
    }

    /// Takes lock `i` (Kamailio's `lock_set_get`).
    ///
    /// # Panics
    /// If `i >= len()`, or if this thread already holds lock `i`.
    #[track_caller]
    pub fn lock(&self, i: usize) -> GenLockGuard<'_, R> {
        self.at(i).lock()
    }

    /// Takes lock `i` if it is free (Kamailio's `lock_set_try`).
    ///
    /// # Panics
    /// If `i >= len()`.
    #[track_caller]
    pub fn try_lock(&self, i: usize) -> Option<GenLockGuard<'_, R>> {
        self.at_within(i, Duration::ZERO)?.try_lock()
    }

    /// Takes lock `i`, waiting at most `timeout` (`_for` a duration, as in `lock_api`; for a
    /// key, see [`try_lock_key_for`](LockSet::try_lock_key_for)).
    ///
    /// # Panics
    /// If `i >= len()`.
    #[track_caller]
    pub fn try_lock_for(&self, i: usize, timeout: Duration) -> Option<GenLockGuard<'_, R>> {
        let start = std::time::Instant::now();
        let lock = self.at_within(i, timeout)?;
        lock.try_lock_for(timeout.saturating_sub(start.elapsed()))
    }

    /// The index that `key` maps to. The hash is the same in every process and every run
    /// (unlike `RandomState`), so all processes pick the same lock for the same key.
    ///
    /// # Panics
    /// If the set has no locks (a zeroed `GenLockSet<0>`), at the caller's line.
    #[track_caller]
    pub fn index_for<K: Hash + ?Sized>(&self, key: &K) -> usize {
        if self.is_empty() {
            empty_set();
        }
        let mut h = StableHasher::new();
        key.hash(&mut h);
        (h.finish() % self.len() as u64) as usize
    }

    /// Takes the lock that `key` maps to (striping by key hash): the same as
    /// [`lock_key`](LockSet::lock_key), kept for compatibility. Its `_for` means *for this
    /// key*, unlike [`try_lock_for`](LockSet::try_lock_for)'s, which (as in `lock_api`)
    /// means *for this long*; new code reads better with the `_key` family.
    #[track_caller]
    pub fn lock_for<K: Hash + ?Sized>(&self, key: &K) -> GenLockGuard<'_, R> {
        self.lock_key(key)
    }

    /// Takes the lock that `key` maps to ([`index_for`](LockSet::index_for)): every process
    /// picks the same lock for the same key.
    ///
    /// ```
    /// use lockkit::GenLockSet;
    ///
    /// let set: GenLockSet<8> = GenLockSet::new();
    /// let g = set.lock_key("sip:alice@example.org");
    /// assert!(set.try_lock(set.index_for("sip:alice@example.org")).is_none());
    /// drop(g);
    /// ```
    #[track_caller]
    pub fn lock_key<K: Hash + ?Sized>(&self, key: &K) -> GenLockGuard<'_, R> {
        self.lock(self.index_for(key))
    }

    /// Takes the lock that `key` maps to if it is free.
    ///
    /// ```
    /// let set: lockkit::GenLockSet<8> = lockkit::GenLockSet::new();
    /// let g = set.lock_key(&42u64);
    /// assert!(set.try_lock_key(&42u64).is_none());
    /// drop(g);
    /// assert!(set.try_lock_key(&42u64).is_some());
    /// ```
    #[track_caller]
    pub fn try_lock_key<K: Hash + ?Sized>(&self, key: &K) -> Option<GenLockGuard<'_, R>> {
        self.try_lock(self.index_for(key))
    }

    /// Takes the lock that `key` maps to, waiting at most `timeout`.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let set: lockkit::GenLockSet<8> = lockkit::GenLockSet::new();
    /// assert!(set.try_lock_key_for("bob", Duration::from_millis(10)).is_some());
    /// ```
    #[track_caller]
    pub fn try_lock_key_for<K: Hash + ?Sized>(
        &self,
        key: &K,
        timeout: Duration,
    ) -> Option<GenLockGuard<'_, R>> {
        self.try_lock_for(self.index_for(key), timeout)
    }

    /// Releases every lock's kernel object (Kamailio's `lock_set_destroy`; see
    /// [`GenLock::destroy`]).
    ///
    /// # Safety
    /// Nobody, in any process, uses the set afterwards.
    pub unsafe fn destroy(&self) {
        for l in self.iter() {
            // SAFETY: forwarded contract.
            unsafe { l.destroy() };
        }
    }

    /// The locks, in index order.
    pub fn iter(&self) -> impl Iterator<Item = &GenLock<R>> {
        self.locks.iter().map(|p| &p.0)
    }
}

/// `set[i]` is lock `i`, so `locked!(set[i] => ..)` reads like indexing.
///
/// # Panics
/// If `i >= len()`, naming both.
impl<R: RawLock> std::ops::Index<usize> for LockSet<R> {
    type Output = GenLock<R>;
    #[track_caller]
    fn index(&self, i: usize) -> &GenLock<R> {
        self.at(i)
    }
}

#[cold]
#[track_caller]
fn empty_set() -> ! {
    panic!("lock set has no locks: a GenLockSet<0> has no lock to map a key to; give it N >= 1")
}

#[cold]
#[track_caller]
fn out_of_range(i: usize, len: usize) -> ! {
    panic!("lock set index out of range: the index is {i} but the set has {len} locks")
}

impl<R: RawLock> fmt::Debug for LockSet<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A lock set of `N` locks stored inline, for use as a field of a shared struct. Zero bytes
/// are a set of unlocked locks.
///
/// ```
/// use lockkit::{GenLockSet, ShmRegion};
///
/// let region = ShmRegion::anonymous(1 << 20)?;
/// let set = region.alloc_zeroed::<GenLockSet<16>>()?; // lock_set_alloc + lock_set_init
/// let g = set.lock(8); // lock_set_get(set, 8)
/// assert!(set.try_lock(8).is_none()); // lock_set_try(set, 8) == -1
/// drop(g); // lock_set_release(set, 8)
/// assert!(set.get(16).is_none()); // the checked form of indexing
/// # Ok::<(), lockkit::Error>(())
/// ```
#[repr(C)]
pub struct GenLockSet<const N: usize, R: RawLock = Futex> {
    locks: [PaddedLock<R>; N],
}

impl<const N: usize> GenLockSet<N> {
    /// A set of `N` unlocked futex locks. `N` must be at least 1 (checked at compile time).
    pub const fn new() -> Self {
        Self::with_backend()
    }
}

impl<const N: usize, R: RawLock> GenLockSet<N, R> {
    /// A set of `N` unlocked locks of backend `R`. `N` must be at least 1 (checked at
    /// compile time).
    pub const fn with_backend() -> Self {
        const { assert!(N > 0, "a lock set needs at least one lock") };
        GenLockSet {
            locks: [const { PaddedLock::with_backend() }; N],
        }
    }
}

impl<const N: usize, R: RawLock> Default for GenLockSet<N, R> {
    fn default() -> Self {
        Self::with_backend()
    }
}

impl<const N: usize, R: RawLock> Deref for GenLockSet<N, R> {
    type Target = LockSet<R>;
    fn deref(&self) -> &LockSet<R> {
        LockSet::from_slice(&self.locks)
    }
}

impl<const N: usize, R: RawLock> fmt::Debug for GenLockSet<N, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

// SAFETY: an array of GenLocks.
unsafe impl<const N: usize, R: RawLock> ShmSafe for GenLockSet<N, R> {
    const LAYOUT: &'static crate::layout::TypeLayout = &crate::layout::TypeLayout::sized::<Self>(
        "GenLockSet",
        crate::layout::Shape::Array {
            elem: PaddedLock::<R>::LAYOUT,
            len: N,
        },
    );
}
// SAFETY: zero bytes are N unlocked locks.
unsafe impl<const N: usize, R: RawLock> ShmZeroable for GenLockSet<N, R> {}

/// 64-bit FNV-1a: fixed constants, no per-process seed.
pub(crate) struct StableHasher(u64);

impl StableHasher {
    pub(crate) const fn new() -> Self {
        StableHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for StableHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn finish(&self) -> u64 {
        // FNV's low bits mix poorly for short keys; fold the high half in before `% len`.
        self.0 ^ (self.0 >> 32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_do_not_share_cache_lines() {
        assert_eq!(std::mem::size_of::<GenLockSet<16>>(), 16 * SET_ENTRY_BYTES);
        assert_eq!(std::mem::align_of::<GenLockSet<16>>(), SET_ENTRY_BYTES);
        const { assert!(SET_ENTRY_BYTES >= 64) };
    }

    #[test]
    #[should_panic(expected = "the index is 4 but the set has 4 locks")]
    fn an_index_past_the_end_panics_naming_both() {
        let set = GenLockSet::<4>::new();
        let _g = set.lock(4);
    }

    #[test]
    fn mapping_a_key_in_a_set_of_no_locks_panics_saying_so() {
        let set = LockSet::<Futex>::from_slice(&[]);
        let r = std::panic::catch_unwind(|| set.index_for("alice"));
        let msg = r.unwrap_err();
        let msg = msg
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| msg.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("");
        assert!(msg.contains("GenLockSet<0>"), "{msg}");
    }

    #[test]
    fn get_is_the_checked_variant() {
        let set = GenLockSet::<4>::new();
        assert!(set.get(3).is_some());
        assert!(set.get(4).is_none());
        assert!(set.get(usize::MAX).is_none());
    }

    #[test]
    fn locks_of_a_set_are_independent() {
        let set = GenLockSet::<2>::new();
        let _a = set.lock(0);
        assert!(set.try_lock(0).is_none());
        assert!(set.try_lock(1).is_some());
    }

    #[test]
    fn the_key_hash_is_fixed_and_spreads_keys() {
        let set = GenLockSet::<16>::new();
        // Fixed value: the same in every process and every build of this version.
        let mut h = StableHasher::new();
        h.write(b"alice");
        assert_eq!(h.finish(), {
            let v: u64 = 0x508b_2abb_65a0_3907; // FNV-1a 64 of "alice"
            v ^ (v >> 32)
        });
        let mut used = [0u32; 16];
        for k in 0..1600u32 {
            used[set.index_for(&k)] += 1;
        }
        assert!(used.iter().all(|&n| n > 50), "{used:?}");
    }
}
