//! Locks that can be chained to a group: the [`ChainLock`] trait, its implementations, and
//! the chain itself (a list kept in the group, read and edited only by the thread holding the
//! group's own lock).

use std::fmt;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::lock_set::LockSet;
use crate::raw::RawLock;
use crate::{GenLock, GenLockSet, RecLock, RwLock, ShmBox, ShmLockSet, ShmMutex, ShmSafe};

use super::GrpLock;

/// A lock a group can take and release on its holder's behalf: any lockkit lock.
///
/// Implemented for [`GenLock`] and [`ShmMutex`] (in shared memory or not), [`RecLock`]
/// (PJSUA's application lock is recursive), the write side of an [`RwLock`], an entry of a
/// lock set ([`SetEntry`]), another [`GrpLock`](super::GrpLock), a group member
/// ([`Member`](super::Member): its group, for `locked!` over several locks), a lock inside
/// a shared object ([`FieldLock`]), and for `Arc`s, `Box`es, references and [`ShmBox`]es of any of
/// them.
///
/// # Safety
/// - `chain_release` may only be called by the thread whose `chain_acquire` (or successful
///   `chain_try_acquire` / `chain_try_acquire_for`) it matches; implementations rely on that.
/// - The methods must not lock, chain or unchain a group that chains this lock (the group is
///   half taken while they run).
/// - A type that leads to a `GrpLock` (a wrapper, a handle) must return it from
///   [`chain_group`](ChainLock::chain_group), as the implementations here do: that is how
///   `chain_lock` finds cycles of groups, and how a destroyed group is dropped from a chain.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a lockkit lock",
    label = "not a lock",
    note = "locked!(a, b, ..) and chain_lock take GenLock, ShmMutex, RecLock, RwLock (its \
            write side), GrpLock, a group member, a lock-set entry (`set[i]`, or SetEntry to \
            chain it), or a ShmBox of one"
)]
pub unsafe trait ChainLock: Send + Sync {
    /// Takes the lock, waiting as long as needed.
    fn chain_acquire(&self);
    /// Takes the lock if it is free.
    fn chain_try_acquire(&self) -> bool;
    /// Takes the lock, waiting at most `timeout`.
    ///
    /// The default tries, then retries after sleeps that grow from 1 µs to 1 ms until the
    /// deadline: right for any lock, but slow to notice a release. lockkit's locks override
    /// it with their own timed wait.
    fn chain_try_acquire_for(&self, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        let mut nap = Duration::from_micros(1);
        loop {
            if self.chain_try_acquire() {
                return true;
            }
            let left = match deadline {
                None => nap,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return false,
                },
            };
            std::thread::sleep(nap.min(left));
            nap = (nap * 2).min(Duration::from_millis(1));
        }
    }
    /// Releases the lock taken by this thread.
    ///
    /// # Safety
    /// The calling thread holds the lock through a matching acquire.
    unsafe fn chain_release(&self);
    /// Identifies the lock (not the handle): two handles of one lock return the same value.
    fn chain_id(&self) -> usize {
        self as *const Self as *const () as usize
    }
    /// The group lock this is (or leads to), if it is one. See the safety section.
    fn chain_group(&self) -> Option<&GrpLock> {
        None
    }
    /// Whether a holder died holding the lock and nobody has marked it consistent since, so
    /// the data it guards may be half-updated: what the lock's own guard's `owner_died`
    /// says. Asked by the thread that holds the lock (through a group). Locks that cannot
    /// tell say `false`.
    fn chain_owner_died(&self) -> bool {
        false
    }
    /// Whether taking this lock shares it with other holders (a reader-writer lock's read
    /// side): what it guards may then be lent only as `&T`, never `&mut T`, whatever other
    /// handle of the same lock (same [`chain_id`](ChainLock::chain_id)) asks.
    #[doc(hidden)]
    fn chain_shared(&self) -> bool {
        false
    }
    /// Declares the lock's data repaired after an owner death: the lock's own guard's
    /// `mark_consistent`.
    ///
    /// # Safety
    /// The calling thread holds the lock.
    unsafe fn chain_mark_consistent(&self) {}
}

// SAFETY: forwards to the GenLock's raw futex, which the acquiring thread releases.
unsafe impl<R: RawLock> ChainLock for GenLock<R> {
    fn chain_acquire(&self) {
        std::mem::forget(self.lock());
    }
    fn chain_try_acquire(&self) -> bool {
        self.try_lock().map(std::mem::forget).is_some()
    }
    fn chain_try_acquire_for(&self, timeout: Duration) -> bool {
        self.try_lock_for(timeout).map(std::mem::forget).is_some()
    }
    unsafe fn chain_release(&self) {
        // SAFETY: the caller holds the lock (trait contract).
        unsafe { self.force_unlock() }
    }
    fn chain_owner_died(&self) -> bool {
        self.is_inconsistent()
    }
    unsafe fn chain_mark_consistent(&self) {
        // SAFETY: the caller holds the lock (trait contract).
        unsafe { self.raw().mark_consistent() }
    }
}

/// The methods of a `ChainLock` impl that forwards each of them to `$target`, an expression
/// of `$this` naming a lock with a `ChainLock` impl of its own (whose contract then holds).
macro_rules! forward_chain_methods {
    ($this:ident => $target:expr) => {
        fn chain_acquire(&$this) {
            $target.chain_acquire()
        }
        fn chain_try_acquire(&$this) -> bool {
            $target.chain_try_acquire()
        }
        fn chain_try_acquire_for(&$this, timeout: Duration) -> bool {
            $target.chain_try_acquire_for(timeout)
        }
        unsafe fn chain_release(&$this) {
            // SAFETY: forwarded contract.
            unsafe { $target.chain_release() }
        }
        fn chain_id(&$this) -> usize {
            $target.chain_id()
        }
        fn chain_group(&$this) -> Option<&GrpLock> {
            $target.chain_group()
        }
        fn chain_owner_died(&$this) -> bool {
            $target.chain_owner_died()
        }
        fn chain_shared(&$this) -> bool {
            $target.chain_shared()
        }
        unsafe fn chain_mark_consistent(&$this) {
            // SAFETY: forwarded contract.
            unsafe { $target.chain_mark_consistent() }
        }
    };
}

// SAFETY: the mutex's data is never touched; only its lock is taken and released.
unsafe impl<T: crate::ShmSafe, R: RawLock> ChainLock for ShmMutex<T, R> {
    forward_chain_methods!(self => self.raw_lock());
}

// SAFETY: takes one level of the recursive lock and gives back that level, on the same
// thread (trait contract), so the lock's depth counts it exactly once.
unsafe impl ChainLock for RecLock {
    fn chain_acquire(&self) {
        std::mem::forget(self.lock());
    }
    fn chain_try_acquire(&self) -> bool {
        self.try_lock().map(std::mem::forget).is_some()
    }
    fn chain_try_acquire_for(&self, timeout: Duration) -> bool {
        self.try_lock_for(timeout).map(std::mem::forget).is_some()
    }
    unsafe fn chain_release(&self) {
        // SAFETY: the caller holds a level taken by chain_acquire (trait contract).
        unsafe { self.force_unlock_level() }
    }
    fn chain_owner_died(&self) -> bool {
        self.is_inconsistent()
    }
    unsafe fn chain_mark_consistent(&self) {
        // SAFETY: the caller holds the lock (trait contract).
        unsafe { self.raw_futex().mark_consistent() }
    }
}

// SAFETY: the write side of the lock, taken and released by the same thread (trait
// contract); its data is never touched. The group's holder is then the lock's only writer
// and no reader is inside.
unsafe impl<T: ShmSafe> ChainLock for RwLock<T> {
    fn chain_acquire(&self) {
        std::mem::forget(self.write());
    }
    fn chain_try_acquire(&self) -> bool {
        self.try_write().map(std::mem::forget).is_some()
    }
    fn chain_try_acquire_for(&self, timeout: Duration) -> bool {
        self.try_write_for(timeout).map(std::mem::forget).is_some()
    }
    unsafe fn chain_release(&self) {
        // SAFETY: the caller holds the write lock taken by chain_acquire (trait contract).
        unsafe { self.force_write_unlock() }
    }
    fn chain_owner_died(&self) -> bool {
        self.is_inconsistent()
    }
    unsafe fn chain_mark_consistent(&self) {
        // SAFETY: the caller holds the write lock (trait contract).
        unsafe { self.force_mark_consistent() }
    }
}

// SAFETY: the write side of the RwLock<()> the GenRwLock is, through its own impl.
unsafe impl ChainLock for crate::GenRwLock {
    forward_chain_methods!(self => (**self));
}

/// Something that holds a lock set: a [`ShmLockSet`], a [`GenLockSet`], a `ShmBox` of one,
/// or an `Arc` or `'static` reference to any of them.
///
/// # Safety
/// `lock_set` returns the same set, at the same address, every time it is called on the
/// same value, and does not lock, chain or unchain any group lock (it runs inside a group's
/// operations, as [`ChainLock`]'s methods do). A [`SetEntry`] finds its lock through it on
/// every acquisition and release: a set that changed in between would have the release
/// unlock a lock that another thread holds. (A type that holds its set by value may move; the set moves with it.) To chain a
/// lock of a set inside a struct of your own, use [`FieldLock`] instead of implementing
/// this trait:
///
/// ```compile_fail,E0200
/// struct Mine(lockkit::GenLockSet<2>);
/// impl lockkit::grp::AsLockSet for Mine {
///     fn lock_set(&self) -> &lockkit::LockSet {
///         &self.0
///     }
/// }
/// ```
pub unsafe trait AsLockSet {
    /// The set.
    fn lock_set(&self) -> &LockSet;
}

// SAFETY: the set itself.
unsafe impl AsLockSet for LockSet {
    fn lock_set(&self) -> &LockSet {
        self
    }
}
// SAFETY: the set it dereferences to, which it holds.
unsafe impl AsLockSet for ShmLockSet {
    fn lock_set(&self) -> &LockSet {
        self
    }
}
// SAFETY: as above.
unsafe impl<const N: usize> AsLockSet for GenLockSet<N> {
    fn lock_set(&self) -> &LockSet {
        self
    }
}
// SAFETY: a ShmBox points at one object for its whole life; that object's set (its own
// contract) is the same every time.
unsafe impl<T: AsLockSet> AsLockSet for ShmBox<T> {
    fn lock_set(&self) -> &LockSet {
        (**self).lock_set()
    }
}
// SAFETY: as for ShmBox: an Arc's target never changes.
unsafe impl<T: AsLockSet + ?Sized> AsLockSet for Arc<T> {
    fn lock_set(&self) -> &LockSet {
        (**self).lock_set()
    }
}
// SAFETY: as for ShmBox: a reference's target never changes.
unsafe impl<T: AsLockSet + ?Sized> AsLockSet for &T {
    fn lock_set(&self) -> &LockSet {
        (**self).lock_set()
    }
}

/// A lock that is a field (or any part) of a shared object, held together with the
/// object: how a group chains a stripe, or any lock, of a `#[shared_locked]` table.
///
/// The lock is found once, by `part`, when the `FieldLock` is made; the `FieldLock` keeps
/// the object alive, so every acquisition and release names that same lock.
///
/// ```
/// use std::sync::Arc;
/// use lockkit::grp::{FieldLock, GrpLock};
/// use lockkit::{GenLock, GenLockSet};
///
/// #[derive(lockkit::ShmSafe)]
/// #[repr(C)]
/// struct Table {
///     stripes: GenLockSet<4>,
///     global: GenLock,
/// }
///
/// let region = lockkit::ShmRegion::anonymous(1 << 20)?;
/// let table = Arc::new(region.alloc_zeroed::<Table>()?);
/// let group = GrpLock::new();
/// group.chain_lock(Arc::new(FieldLock::new(Arc::clone(&table), |t| t.stripes.at(2))), -1).unwrap();
/// let g = group.lock();
/// assert!(table.stripes.at(2).is_locked());
/// drop(g);
/// assert!(!table.stripes.at(2).is_locked());
/// # Ok::<(), lockkit::Error>(())
/// ```
pub struct FieldLock<T: ?Sized, L: ?Sized = GenLock> {
    /// Keeps the lock's memory alive (and, being a second `Arc`, keeps anyone from getting
    /// `&mut T` through `Arc::get_mut`).
    _owner: Arc<T>,
    lock: NonNull<L>,
}

impl<T: ?Sized, L: ?Sized> FieldLock<T, L> {
    /// The lock that `part` finds in `owner`.
    pub fn new(owner: Arc<T>, part: impl for<'a> FnOnce(&'a T) -> &'a L) -> Self {
        let lock = NonNull::from(part(&owner));
        FieldLock {
            _owner: owner,
            lock,
        }
    }

    /// The lock.
    pub fn lock(&self) -> &L {
        // SAFETY: `part` borrowed the lock from `&T`, and safe code cannot free or move what
        // such a reference points at while `T` lives and is only shared; `T` lives as long
        // as `_owner`, and no `&mut T` can be made while this second `Arc` exists.
        unsafe { self.lock.as_ref() }
    }
}

// SAFETY: the lock is only reached as `&L`, which `L: Sync` lets any thread hold; the owner
// is an `Arc<T>`, which is Send and Sync for `T: Send + Sync`.
unsafe impl<T: ?Sized + Send + Sync, L: ?Sized + Sync> Send for FieldLock<T, L> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Send + Sync, L: ?Sized + Sync> Sync for FieldLock<T, L> {}

// SAFETY: forwards to one lock, the same every time (see `lock`), under its own contract.
unsafe impl<T: ?Sized + Send + Sync, L: ChainLock + ?Sized> ChainLock for FieldLock<T, L> {
    forward_chain_methods!(self => self.lock());
}

impl<T: ?Sized, L: ?Sized> fmt::Debug for FieldLock<T, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FieldLock").finish_non_exhaustive()
    }
}

macro_rules! forward_chain_lock {
    ($([$($bound:tt)*] $ty:ty),*) => {
        $(
            // SAFETY: forwards to the lock behind the handle (a ShmBox keeps its region
            // mapped while it lives).
            unsafe impl<T: ChainLock + $($bound)*> ChainLock for $ty {
                forward_chain_methods!(self => (**self));
            }
        )*
    };
}

forward_chain_lock!([?Sized] &T, [?Sized] Arc<T>, [?Sized] Box<T>, [Sized] ShmBox<T>);

/// One lock of a lock set, held together with the set (see [`AsLockSet`]), so it can be
/// chained to a group.
///
/// ```
/// use std::sync::Arc;
/// use lockkit::grp::{GrpLock, SetEntry};
///
/// let region = lockkit::ShmRegion::anonymous(1 << 20)?;
/// let set = Arc::new(region.alloc_lock_set(8)?);
/// let group = GrpLock::new();
/// group.chain_lock(Arc::new(SetEntry::new(Arc::clone(&set), 3)), -1).unwrap();
/// let g = group.lock();
/// assert!(set.get(3).unwrap().is_locked());
/// drop(g);
/// assert!(!set.get(3).unwrap().is_locked());
/// # Ok::<(), lockkit::Error>(())
/// ```
pub struct SetEntry<S> {
    set: S,
    index: usize,
}

impl<S: AsLockSet> SetEntry<S> {
    /// Entry `index` of `set`.
    ///
    /// # Panics
    /// If `index` is out of range, naming both.
    #[track_caller]
    pub fn new(set: S, index: usize) -> Self {
        set.lock_set().at(index);
        SetEntry { set, index }
    }

    fn lock(&self) -> &GenLock {
        self.set.lock_set().at(self.index)
    }
}

// SAFETY: forwards to the entry's GenLock.
unsafe impl<S: AsLockSet + Send + Sync> ChainLock for SetEntry<S> {
    forward_chain_methods!(self => self.lock());
}

/// A lock in a group's chain.
pub(crate) struct Link {
    pub(crate) lock: Arc<dyn ChainLock>,
    /// `lock`'s target, found once (the `Arc`'s data offset takes a few instructions, on
    /// every acquire and release otherwise).
    ptr: *const dyn ChainLock,
    pub(crate) pos: i32,
    /// Whether `lock` is a group (`chain_group` is `Some`), found once at chain time.
    pub(crate) group: bool,
    /// `lock`'s `chain_id` if it is not a group (0 for a group, whose id follows `replace`),
    /// read once, so that the graph of chains never runs user code under its lock.
    pub(crate) id: usize,
}

impl Link {
    pub(crate) fn new(lock: Arc<dyn ChainLock>, pos: i32) -> Self {
        let group = lock.chain_group().is_some();
        let id = if group { 0 } else { lock.chain_id() };
        let ptr = Arc::as_ptr(&lock);
        Link {
            lock,
            ptr,
            pos,
            group,
            id,
        }
    }

    /// The chained lock.
    #[inline(always)]
    pub(crate) fn get(&self) -> &dyn ChainLock {
        // SAFETY: `ptr` points into `lock`'s allocation, which lives as long as `self`.
        unsafe { &*self.ptr }
    }
}

/// Where `link` goes in `chain` (sorted by pos): before the first link of equal or greater
/// pos, as PJLIB orders them.
pub(crate) fn insert_at(chain: &[Link], pos: i32) -> usize {
    chain
        .iter()
        .position(|l| l.pos >= pos)
        .unwrap_or(chain.len())
}

/// Whether two chained locks are the same lock, whatever handles they came through.
pub(crate) fn same_lock(a: &dyn ChainLock, b: &dyn ChainLock) -> bool {
    a.chain_id() == b.chain_id()
}
