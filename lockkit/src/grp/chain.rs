//! Locks that can be chained to a group: the [`ChainLock`] trait, its implementations, and the
//! chain itself (an immutable, ordered snapshot replaced as a whole on every edit).

use std::sync::Arc;

use crate::lock_set::LockSet;
use crate::raw::RawLock;
use crate::{GenLock, GenLockSet, RecLock, RwLock, ShmBox, ShmLockSet, ShmMutex};

/// A lock a group can take and release on its holder's behalf: any lockkit lock.
///
/// Implemented for [`GenLock`] and [`ShmMutex`] (in shared memory or not), for a
/// [`RecLock`] (PJSUA's application lock is recursive), for the write side of an
/// [`RwLock`], for [`ShmBox`]es of them, for an entry of a lock set ([`SetEntry`]), and for
/// another [`GrpLock`](super::GrpLock).
///
/// # Safety
/// `chain_release` may only be called by the thread whose `chain_acquire` (or successful
/// `chain_try_acquire`) it matches; implementations rely on that.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a lockkit lock",
    label = "not a lock",
    note = "locked!(a, b, ..) and chain_lock take GenLock, ShmMutex, RecLock, RwLock (its \
            write side), GrpLock, a lock-set entry (`set[i]`, or SetEntry to chain it), or a \
            ShmBox of one"
)]
pub unsafe trait ChainLock: Send + Sync {
    /// Takes the lock, waiting as long as needed.
    fn chain_acquire(&self);
    /// Takes the lock if it is free.
    fn chain_try_acquire(&self) -> bool;
    /// Releases the lock taken by this thread.
    ///
    /// # Safety
    /// The calling thread holds the lock through a matching acquire.
    unsafe fn chain_release(&self);
    /// Identifies the lock (not the handle): two handles of one lock return the same value.
    fn chain_id(&self) -> usize {
        self as *const Self as *const () as usize
    }
    /// The group this lock is, if it is one: how `chain_lock` finds cycles.
    #[doc(hidden)]
    fn as_group(&self) -> Option<&super::GrpLock> {
        None
    }
}

// SAFETY: forwards to the GenLock's raw futex, which the acquiring thread releases.
unsafe impl<R: RawLock> ChainLock for GenLock<R> {
    fn chain_acquire(&self) {
        std::mem::forget(self.lock());
    }
    fn chain_try_acquire(&self) -> bool {
        self.try_lock().map(std::mem::forget).is_some()
    }
    unsafe fn chain_release(&self) {
        // SAFETY: the caller holds the lock (trait contract).
        unsafe { self.force_unlock() }
    }
}

// SAFETY: the mutex's data is never touched; only its lock is taken and released.
unsafe impl<T: crate::ShmSafe, R: RawLock> ChainLock for ShmMutex<T, R> {
    fn chain_acquire(&self) {
        self.raw_lock().chain_acquire()
    }
    fn chain_try_acquire(&self) -> bool {
        self.raw_lock().chain_try_acquire()
    }
    unsafe fn chain_release(&self) {
        // SAFETY: forwarded contract.
        unsafe { self.raw_lock().chain_release() }
    }
    fn chain_id(&self) -> usize {
        self.raw_lock().chain_id()
    }
}

// SAFETY: one level of the recursive lock, taken and released by the same thread.
unsafe impl ChainLock for RecLock {
    fn chain_acquire(&self) {
        std::mem::forget(self.lock());
    }
    fn chain_try_acquire(&self) -> bool {
        self.try_lock().map(std::mem::forget).is_some()
    }
    unsafe fn chain_release(&self) {
        // SAFETY: the caller holds a level taken by chain_acquire (trait contract).
        unsafe { self.force_unlock_level() }
    }
}

// SAFETY: the write side of the lock, taken and released by the same thread; its data is
// never touched.
unsafe impl<T: crate::ShmSafe> ChainLock for RwLock<T> {
    fn chain_acquire(&self) {
        std::mem::forget(self.write());
    }
    fn chain_try_acquire(&self) -> bool {
        self.try_write().map(std::mem::forget).is_some()
    }
    unsafe fn chain_release(&self) {
        // SAFETY: the caller holds the write lock taken by chain_acquire (trait contract).
        unsafe { self.force_write_unlock() }
    }
}

/// Something that holds a lock set: a [`ShmLockSet`], a [`GenLockSet`], a `ShmBox` of one,
/// or an `Arc` or `'static` reference to any of them.
pub trait AsLockSet {
    /// The set.
    fn lock_set(&self) -> &LockSet;
}

impl AsLockSet for LockSet {
    fn lock_set(&self) -> &LockSet {
        self
    }
}
impl AsLockSet for ShmLockSet {
    fn lock_set(&self) -> &LockSet {
        self
    }
}
impl<const N: usize> AsLockSet for GenLockSet<N> {
    fn lock_set(&self) -> &LockSet {
        self
    }
}
impl<T: AsLockSet> AsLockSet for ShmBox<T> {
    fn lock_set(&self) -> &LockSet {
        (**self).lock_set()
    }
}
impl<T: AsLockSet + ?Sized> AsLockSet for Arc<T> {
    fn lock_set(&self) -> &LockSet {
        (**self).lock_set()
    }
}
impl<T: AsLockSet + ?Sized> AsLockSet for &T {
    fn lock_set(&self) -> &LockSet {
        (**self).lock_set()
    }
}

macro_rules! forward_chain_lock {
    ($([$($bound:tt)*] $ty:ty),*) => {
        $(
            // SAFETY: forwards to the lock behind the handle (a ShmBox keeps its region
            // mapped while it lives).
            unsafe impl<T: ChainLock + $($bound)*> ChainLock for $ty {
                fn chain_acquire(&self) {
                    (**self).chain_acquire()
                }
                fn chain_try_acquire(&self) -> bool {
                    (**self).chain_try_acquire()
                }
                unsafe fn chain_release(&self) {
                    // SAFETY: forwarded contract.
                    unsafe { (**self).chain_release() }
                }
                fn chain_id(&self) -> usize {
                    (**self).chain_id()
                }
                fn as_group(&self) -> Option<&super::GrpLock> {
                    (**self).as_group()
                }
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
    fn chain_acquire(&self) {
        self.lock().chain_acquire()
    }
    fn chain_try_acquire(&self) -> bool {
        self.lock().chain_try_acquire()
    }
    unsafe fn chain_release(&self) {
        // SAFETY: forwarded contract.
        unsafe { self.lock().chain_release() }
    }
    fn chain_id(&self) -> usize {
        self.lock().chain_id()
    }
}

/// A lock in a group's chain.
#[derive(Clone)]
pub(crate) struct Link {
    pub(crate) lock: Arc<dyn ChainLock>,
    pub(crate) pos: i32,
}

/// The chain at one version: links sorted by `pos`, the group's own lock (pos 0) standing
/// after every link with `pos <= 0`.
pub(crate) struct Chain {
    pub(crate) version: u64,
    pub(crate) links: Vec<Link>,
}

impl Chain {
    pub(crate) fn empty() -> Self {
        Chain {
            version: 0,
            links: Vec::new(),
        }
    }

    /// How many links are taken before the group's own lock.
    pub(crate) fn before_own(&self) -> usize {
        self.links.iter().take_while(|l| l.pos <= 0).count()
    }

    /// The next version, with no links.
    pub(crate) fn cleared(&self) -> Chain {
        Chain {
            version: self.version + 1,
            links: Vec::new(),
        }
    }

    pub(crate) fn position(&self, lock: &Arc<dyn ChainLock>) -> Option<usize> {
        self.links.iter().position(|l| same_lock(&l.lock, lock))
    }

    /// The next version with `link` inserted before the first link of equal or greater pos
    /// (as PJLIB orders them).
    pub(crate) fn with(&self, link: Link) -> Chain {
        let at = self
            .links
            .iter()
            .position(|l| l.pos >= link.pos)
            .unwrap_or(self.links.len());
        let mut links = self.links.clone();
        links.insert(at, link);
        Chain {
            version: self.version + 1,
            links,
        }
    }

    /// The next version without link `i`.
    pub(crate) fn without(&self, i: usize) -> Chain {
        let mut links = self.links.clone();
        links.remove(i);
        Chain {
            version: self.version + 1,
            links,
        }
    }
}

/// Whether two chained locks are the same lock, whatever handles they came through.
pub(crate) fn same_lock(a: &Arc<dyn ChainLock>, b: &Arc<dyn ChainLock>) -> bool {
    a.chain_id() == b.chain_id()
}
