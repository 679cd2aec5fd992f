//! [`GrpLock`]: PJLIB's group lock (`pj_grp_lock_t`) for the threads of one process.
//!
//! A group lock coordinates the members of one logical object (a dialog and its invite
//! session and transactions; an ICE session and its sockets):
//!
//! - **mutual exclusion**, recursive for the thread that holds it;
//! - **lifetime**: every [`GrpLock`] handle is a reference; when the last one goes, the
//!   destroy handlers the members registered run, once, in registration order;
//! - **lock ordering**: external locks chained at a position are taken in ascending
//!   position around the group's own lock (position 0), so everybody who goes through the
//!   group takes them in the same order and cannot deadlock on them.
//!
//! ```
//! use std::sync::Arc;
//! use lockkit::grp::{GrpLock, Released};
//! use lockkit::GenLock;
//!
//! let group = GrpLock::new();                          // pj_grp_lock_create
//! let app_lock = Arc::new(GenLock::new());
//! group.chain_lock(app_lock.clone(), -1).unwrap();     // taken before the group's own lock
//! group.add_handler(|| println!("dialog destroyed"));  // pj_grp_lock_add_handler
//!
//! let tsx_ref = group.add_ref();                       // a transaction keeps the group alive
//! {
//!     let _g = group.lock();                           // app_lock, then the group
//!     assert!(app_lock.is_locked());
//! }                                                    // released in reverse order
//! assert_eq!(group.dec_ref(), Released::Alive);        // the dialog lets go
//! assert_eq!(tsx_ref.dec_ref(), Released::Gone);       // the last one: handlers run
//! ```
//!
//! # Where lockkit differs from PJLIB
//! - References are handles: `Clone`/`add_ref` add one, `Drop`/`dec_ref` remove one, so a
//!   reference cannot be given back twice and only a holder of a reference can lock. The
//!   count starts at 1 (the creator's handle), not 0.
//! - Recursion counts depth; chained locks are taken once, by the outermost acquisition, and
//!   released by the matching outermost release.
//! - Chaining and unchaining are safe at any time: edits happen under the group's own lock
//!   and bump a version; an acquirer that took the locks before the group's own lock from an
//!   older chain notices after taking the own lock, releases and starts again.
//! - Destroy runs once whatever the handlers do. A handler must not own a `GrpLock` of its
//!   own group (that reference would keep the group alive forever): members keep a
//!   [`WeakGrpLock`].
//! - [`replace`](GrpLock::replace) refuses to replace a group that some thread holds.

mod chain;
mod debug;
mod life;
mod member;
mod sync;

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering::*};
use std::sync::{Arc, Mutex, Weak};

pub use chain::{AsLockSet, ChainLock, SetEntry};
pub use life::HandlerId;
pub use member::{GrpMember, Member, MemberGuard};

use chain::{same_lock, Chain, Link};
use life::Life;

use crate::raw::RawFutex;
use crate::sys;

/// Held while a group is chained to another group (see `GrpLock::chain_lock`).
static GROUP_EDITS: Mutex<()> = Mutex::new(());

/// What giving back a reference did (PJLIB returns `PJ_EGONE` for `Gone`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Released {
    /// Other references remain; the group lives on.
    Alive,
    /// That was the last reference: the group was destroyed and its handlers ran.
    Gone,
}

/// Why chaining a lock failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainError {
    /// The lock is already in this group's chain.
    AlreadyChained,
    /// A group cannot be chained to itself.
    SelfChain,
    /// The lock is a group that (directly or through other groups) chains this group: taking
    /// either would take the other, for ever.
    Cycle,
    /// The caller holds the group and the new lock is busy: waiting for it while holding the
    /// group could deadlock (with a thread that holds the new lock and waits for the group,
    /// or by breaking the lock order), so nothing was changed. Release the group and chain
    /// again.
    WouldBreakOrder,
}

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChainError::AlreadyChained => "the lock is already chained to this group",
            ChainError::SelfChain => "a group lock cannot be chained to itself",
            ChainError::Cycle => {
                "the lock is a group that already chains this group (directly or through \
                 other groups): chaining it would make a cycle"
            }
            ChainError::WouldBreakOrder => {
                "the lock is busy and this thread holds the group: waiting for it while \
                 holding the group could deadlock; release the group and chain it again"
            }
        })
    }
}
impl std::error::Error for ChainError {}

/// Why [`GrpLock::replace`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplaceError {
    /// Some thread (perhaps the caller) holds the old group.
    OldGroupHeld,
    /// The old group was already destroyed.
    OldGroupGone,
    /// The new group was already destroyed.
    NewGroupGone,
    /// Old and new are the same group.
    SameGroup,
}

impl fmt::Display for ReplaceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReplaceError::OldGroupHeld => {
                "the old group is held by a thread; release it before replacing it"
            }
            ReplaceError::OldGroupGone => "the old group was already destroyed",
            ReplaceError::NewGroupGone => "the new group was already destroyed",
            ReplaceError::SameGroup => "a group cannot replace itself",
        })
    }
}
impl std::error::Error for ReplaceError {}

const CHAINED: u8 = 1;
const DESTROYED: u8 = 2;

/// What the holding thread has taken, so that release undoes exactly that: `links` in the
/// order taken, the first `before` of them before the group's own lock. Without chained
/// locks `links` stays empty and never allocates.
struct Hold {
    depth: usize,
    before: usize,
    links: Vec<(Arc<dyn ChainLock>, i32)>,
}

/// How an attempt to take the group ended.
#[derive(PartialEq, Eq)]
enum Got {
    Yes,
    Busy,
    Dead,
}

struct Inner {
    own: RawFutex,
    /// Thread id of the holder, 0 when free. Only the holder stores its own id, so a thread
    /// that reads its own id here holds the group.
    owner: AtomicU32,
    /// Touched only by the thread that holds `own` (and has set `owner`).
    hold: UnsafeCell<Hold>,
    /// Replaced as a whole, only while `own` is held; read by acquirers before they take it.
    chain: Mutex<Arc<Chain>>,
    /// `CHAINED | DESTROYED`, changed only while holding `own`, so a holder reads them with
    /// one relaxed load; `CHAINED` lets the common case skip the chain entirely.
    flags: AtomicU8,
    life: Life,
    refs: debug::Refs,
    /// The process that created the group: the only one whose last reference (or
    /// `force_destroy`) runs the destroy handlers. A `fork` child holds copies of the
    /// parent's references, and the members the handlers release are the parent's.
    creator_pid: u32,
}

// SAFETY: `hold` is only accessed by the thread holding `own` (see `Inner::hold_mut`); every
// other field is Sync.
unsafe impl Sync for Inner {}
// SAFETY: `hold`'s contents (Arcs of Send + Sync locks) may move between threads.
unsafe impl Send for Inner {}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last reference is gone: nobody holds the group (a guard is a reference).
        self.flags.fetch_or(DESTROYED, Relaxed);
        self.end_life();
    }
}

/// A reference to a group lock. Cloning adds a reference, dropping removes one; the last one
/// destroys the group.
pub struct GrpLock {
    inner: ManuallyDrop<Arc<Inner>>,
    ref_id: debug::RefId,
}

/// A reference that does not keep the group alive, for members (whose destroy handlers the
/// group owns) to reach their group.
#[derive(Clone)]
pub struct WeakGrpLock {
    inner: Weak<Inner>,
}

impl Default for WeakGrpLock {
    fn default() -> Self {
        Self::new()
    }
}

impl WeakGrpLock {
    /// A weak reference to no group (it never upgrades), to fill a member's `#[grp]` field
    /// until it joins one.
    pub fn new() -> Self {
        WeakGrpLock { inner: Weak::new() }
    }

    /// A reference to the group, or `None` if it was destroyed.
    #[track_caller]
    pub fn upgrade(&self) -> Option<GrpLock> {
        let inner = self.inner.upgrade()?;
        if inner.is_destroyed() {
            return None;
        }
        Some(GrpLock::from_arc(inner))
    }
}

impl Default for GrpLock {
    #[track_caller]
    fn default() -> Self {
        Self::new()
    }
}

impl Clone for GrpLock {
    /// Adds a reference (PJLIB's `pj_grp_lock_add_ref`).
    #[track_caller]
    fn clone(&self) -> Self {
        GrpLock::from_arc(Arc::clone(&self.inner))
    }
}

impl Drop for GrpLock {
    fn drop(&mut self) {
        self.inner.refs.forget(self.ref_id);
        // SAFETY: dropped once, here; `self.inner` is not used afterwards.
        drop(unsafe { ManuallyDrop::take(&mut self.inner) });
    }
}

impl GrpLock {
    /// A new group with one reference: this handle (PJLIB's `pj_grp_lock_create`).
    #[track_caller]
    pub fn new() -> GrpLock {
        GrpLock::from_arc(Arc::new(Inner {
            own: RawFutex::new(),
            owner: AtomicU32::new(0),
            hold: UnsafeCell::new(Hold {
                depth: 0,
                before: 0,
                links: Vec::new(),
            }),
            chain: Mutex::new(Arc::new(Chain::empty())),
            flags: AtomicU8::new(0),
            life: Life::new(),
            refs: debug::Refs::new(),
            creator_pid: std::process::id(),
        }))
    }

    #[track_caller]
    fn from_arc(inner: Arc<Inner>) -> GrpLock {
        let ref_id = inner.refs.record();
        GrpLock {
            inner: ManuallyDrop::new(inner),
            ref_id,
        }
    }

    fn id(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }

    /// A weak reference, for members to find their group without keeping it alive.
    pub fn downgrade(&self) -> WeakGrpLock {
        WeakGrpLock {
            inner: Arc::downgrade(&self.inner),
        }
    }

    /// Adds a reference (PJLIB's `pj_grp_lock_add_ref`): the same as `clone`, named for code
    /// that manages references by hand.
    #[track_caller]
    pub fn add_ref(&self) -> GrpLock {
        self.clone()
    }

    /// Gives this reference back (PJLIB's `pj_grp_lock_dec_ref`), reporting whether it was
    /// the last one and so destroyed the group ([`Released::Gone`], PJLIB's `PJ_EGONE`).
    /// Taking `self` by value is what makes a second `dec_ref` of the same reference
    /// impossible.
    pub fn dec_ref(self) -> Released {
        let mut this = ManuallyDrop::new(self);
        this.inner.refs.forget(this.ref_id);
        // SAFETY: `this` is never dropped (ManuallyDrop), so the Arc is taken exactly once.
        let arc = unsafe { ManuallyDrop::take(&mut this.inner) };
        match Arc::into_inner(arc) {
            Some(inner) => {
                drop(inner); // runs the destroy handlers
                Released::Gone
            }
            None => Released::Alive,
        }
    }

    /// The number of references (PJLIB's `pj_grp_lock_get_ref`), handles and owned guards
    /// included. A snapshot: other threads may change it at once.
    pub fn get_ref(&self) -> usize {
        Arc::strong_count(&self.inner)
    }

    /// Whether the group was destroyed by [`force_destroy`](GrpLock::force_destroy) or
    /// [`replace`](GrpLock::replace) while this handle still exists.
    pub fn is_destroyed(&self) -> bool {
        self.inner.is_destroyed()
    }

    /// Takes the group: the chained locks with `pos <= 0`, the group's own lock, then the
    /// chained locks with `pos > 0`, each in ascending order (PJLIB's `pj_grp_lock_acquire`).
    /// Recursive: the holding thread may lock again; it is released when the last guard goes.
    ///
    /// # Panics
    /// If the group was destroyed by `force_destroy` or `replace` (a handle used after that
    /// is a bug in the caller).
    #[inline]
    pub fn lock(&self) -> GrpGuard<'_> {
        self.inner.acquire_or_panic();
        GrpGuard::new(Hand::Borrowed(self))
    }

    /// Like [`lock`](GrpLock::lock), but the guard owns this reference, so it can outlive
    /// every other handle and its release can be the one that destroys the group.
    pub fn lock_owned(self) -> GrpGuard<'static> {
        self.inner.acquire_or_panic();
        GrpGuard::new(Hand::Owned(self))
    }

    /// Takes the group if it and all its chained locks are free (PJLIB's
    /// `pj_grp_lock_tryacquire`); on failure every lock it took is released again.
    pub fn try_lock(&self) -> Option<GrpGuard<'_>> {
        match self.inner.enter(true) {
            Got::Yes => Some(GrpGuard::new(Hand::Borrowed(self))),
            Got::Busy => None,
            Got::Dead => Inner::dead(),
        }
    }

    /// Takes the group, waiting at most `timeout` for it and its chained locks; `None` if
    /// the time ran out (everything taken on the way is released again).
    ///
    /// Chained locks have no timed acquire of their own, so this retries
    /// [`try_lock`](GrpLock::try_lock) with a short sleep between attempts (growing from
    /// 50 µs to 1 ms): it never waits while holding a lock, and it may take up to a
    /// millisecond longer to notice that the group became free than `lock` would.
    ///
    /// # Panics
    /// If the group was destroyed by `force_destroy` or `replace`.
    pub fn try_lock_for(&self, timeout: std::time::Duration) -> Option<GrpGuard<'_>> {
        let deadline = crate::deadline::Deadline::after(timeout);
        let mut nap = std::time::Duration::from_micros(50);
        loop {
            if let Some(g) = self.try_lock() {
                return Some(g);
            }
            let left = deadline.left().ok()?;
            std::thread::sleep(left.map_or(nap, |l| l.min(nap)));
            nap = (nap * 2).min(std::time::Duration::from_millis(1));
        }
    }

    /// Whether the calling thread holds the group.
    #[inline]
    pub fn is_held_by_current_thread(&self) -> bool {
        self.inner.owner.load(Relaxed) == sys::tid()
    }

    /// How many times the calling thread holds the group (0 if it does not).
    pub fn depth(&self) -> usize {
        if self.is_held_by_current_thread() {
            // SAFETY: this thread holds the group, so it may read `hold`.
            unsafe { self.inner.hold_mut().depth }
        } else {
            0
        }
    }

    /// Registers a destroy handler (PJLIB's `pj_grp_lock_add_handler`): it runs once, when the
    /// last reference goes, after the handlers registered before it. The closure owns what
    /// it destroys (the member).
    ///
    /// Returns `None`, dropping the closure without running it, if the group was already
    /// destroyed.
    pub fn add_handler(&self, destroy: impl FnOnce() + Send + 'static) -> Option<HandlerId> {
        self.inner.life.add(self.id(), Box::new(destroy)).ok()
    }

    /// Unregisters a handler (PJLIB's `pj_grp_lock_del_handler`) for a member that leaves
    /// early; the closure is dropped without running. Returns false if `id` is not
    /// registered with this group (never was, already removed, or the group was destroyed).
    pub fn del_handler(&self, id: HandlerId) -> bool {
        self.inner.life.remove(self.id(), id)
    }

    /// The number of registered destroy handlers (0 once destroyed).
    pub fn handler_count(&self) -> usize {
        self.inner.life.len().unwrap_or(0)
    }

    /// Chains an external lock at `pos` (PJLIB's `pj_grp_lock_chain_lock`). Locks with a
    /// lower pos are taken first; the group's own lock is at 0, and a chained lock with
    /// `pos <= 0` is taken before it (a new lock goes before existing ones of equal pos).
    ///
    /// Safe at any time. If the calling thread holds the group, the new lock is taken now too,
    /// so that its release matches, but only if it is free: waiting for it while holding the
    /// group could deadlock with a thread that holds it and waits for the group
    /// ([`ChainError::WouldBreakOrder`] then, and nothing changes). If another thread holds
    /// the group, this waits for it, holding nothing.
    pub fn chain_lock(&self, lock: Arc<dyn ChainLock>, pos: i32) -> Result<(), ChainError> {
        if lock.chain_id() == self.chain_id() {
            return Err(ChainError::SelfChain);
        }
        // Chain edits that involve groups are serialised, so two threads chaining A to B and
        // B to A at once cannot both pass the cycle check.
        let _edit = lock
            .as_group()
            .map(|_| GROUP_EDITS.lock().unwrap_or_else(|e| e.into_inner()));
        if let Some(g) = lock.as_group() {
            if g.reaches(self.chain_id(), 0) {
                return Err(ChainError::Cycle);
            }
        }
        let was_held = self.is_held_by_current_thread();
        let _g = self.lock();
        let inner = &*self.inner;
        let current = inner.chain_snapshot();
        if current.position(&lock).is_some() {
            return Err(ChainError::AlreadyChained);
        }
        if was_held {
            // Never wait while holding the group: a thread that holds the new lock and waits
            // for the group would deadlock with us. Take it only if it is free. No reference
            // into `hold` lives across this call, which may re-enter this group.
            if !lock.chain_try_acquire() {
                return Err(ChainError::WouldBreakOrder);
            }
            // SAFETY: we hold the group; the reference lives for this one push.
            unsafe { inner.hold_mut() }
                .links
                .push((Arc::clone(&lock), pos));
        }
        inner.set_chain(current.with(Link { lock, pos }));
        Ok(())
    }

    /// Whether this group's chain holds the lock `target`, directly or through chained
    /// groups (a depth bound keeps a damaged chain from recursing without end).
    fn reaches(&self, target: usize, depth: usize) -> bool {
        if depth > 64 {
            return true;
        }
        self.inner.chain_snapshot().links.iter().any(|l| {
            l.lock.chain_id() == target
                || l.lock
                    .as_group()
                    .is_some_and(|g| g.reaches(target, depth + 1))
        })
    }

    /// Removes a chained lock (PJLIB's `pj_grp_lock_unchain_lock`); if the calling thread
    /// holds the group, the lock is released now. Returns false if it was not chained. Safe
    /// at any time, including while other threads acquire and release the group.
    pub fn unchain_lock(&self, lock: &Arc<dyn ChainLock>) -> bool {
        let _g = self.lock();
        let inner = &*self.inner;
        let current = inner.chain_snapshot();
        let Some(i) = current.position(lock) else {
            return false;
        };
        inner.set_chain(current.without(i));
        // Take the link out of the hold in one short access, then release it with no
        // reference into `hold` alive (the release may re-enter this group).
        let taken = {
            // SAFETY: we hold the group; the reference ends with this block.
            let hold = unsafe { inner.hold_mut() };
            hold.links
                .iter()
                .position(|(l, _)| same_lock(l, lock))
                .map(|t| {
                    if t < hold.before {
                        hold.before -= 1;
                    }
                    hold.links.remove(t).0
                })
        };
        if let Some(l) = taken {
            // SAFETY: this thread took it as part of its hold.
            unsafe { l.chain_release() };
        }
        true
    }

    /// The chained locks' positions, in the order they are taken (the group's own lock shows
    /// as the 0 after the links with `pos <= 0`).
    pub fn chain_order(&self) -> Vec<i32> {
        let chain = self.inner.chain_snapshot();
        let mut order: Vec<i32> = chain.links.iter().map(|l| l.pos).collect();
        order.insert(chain.before_own(), 0);
        order
    }

    /// Moves the destroy handlers of `old` to `new` (appended after `new`'s own) and
    /// destroys `old` without running them (PJLIB's `pj_grp_lock_replace`).
    ///
    /// Afterwards `old`'s handles still exist but the group is dead: locking it panics,
    /// dropping them runs nothing, its chained locks are unchained (not carried over; the
    /// new group has its own chain). Refused, with nothing changed, while any thread holds
    /// `old`.
    pub fn replace(old: &GrpLock, new: &GrpLock) -> Result<(), ReplaceError> {
        if Arc::ptr_eq(&old.inner, &new.inner) {
            return Err(ReplaceError::SameGroup);
        }
        if new.is_destroyed() {
            return Err(ReplaceError::NewGroupGone);
        }
        let inner = &*old.inner;
        if inner.owner.load(Relaxed) == sys::tid() || !inner.own.try_lock() {
            return Err(ReplaceError::OldGroupHeld);
        }
        let result = if inner.is_destroyed() {
            Err(ReplaceError::OldGroupGone)
        } else {
            match inner.life.end() {
                None => Err(ReplaceError::OldGroupGone),
                Some(handlers) => match new.inner.life.adopt(handlers) {
                    Ok(()) => Ok(()),
                    Err(handlers) => {
                        // `new` died meanwhile: the handlers must still run once.
                        inner.flags.fetch_or(DESTROYED, Release);
                        handlers.into_iter().for_each(|h| h());
                        Err(ReplaceError::NewGroupGone)
                    }
                },
            }
        };
        if result.is_ok() {
            inner.flags.fetch_or(DESTROYED, Release);
            inner.set_chain(inner.chain_snapshot().cleared());
        }
        // SAFETY: taken by try_lock above, on this thread.
        unsafe { inner.own.unlock() };
        result
    }

    /// Destroys the group now, whatever its reference count (PJLIB's `pj_lock_destroy` on a
    /// group lock): waits until no other thread holds it, releases what the calling thread
    /// holds of it, and runs the destroy handlers. **Dangerous**: members may still be in
    /// use by holders of other references, and every other handle is left pointing at a
    /// dead group whose `lock` panics. Prefer giving references back. Returns false if the
    /// group was already destroyed.
    ///
    /// # Panics
    /// If the calling thread holds the group (a guard, or a member lent through one): the
    /// handlers would destroy members that this thread is still using. Release first.
    #[track_caller]
    pub fn force_destroy(&self) -> bool {
        let inner = &*self.inner;
        if inner.owner.load(Relaxed) == sys::tid() {
            panic!(
                "GrpLock::force_destroy: this thread holds the group (a guard or a lent \
                 member is alive); its destroy handlers would free members still in use. \
                 Drop the guard first"
            );
        }
        if inner.is_destroyed() {
            return false;
        }
        if inner.enter(false) == Got::Dead {
            return false;
        }
        inner.flags.fetch_or(DESTROYED, Release);
        // SAFETY: we hold the group.
        unsafe { inner.hold_mut().depth = 1 };
        // SAFETY: we hold it, at depth 1 now, so this releases everything we took.
        unsafe { inner.release() };
        inner.end_life()
    }

    /// A description of the group for finding leaked references: the count and, with the
    /// `grp-debug` feature, where each live reference was taken (`file:line:column`).
    pub fn dump(&self) -> String {
        let mut s = format!(
            "group lock {:#x}: {} reference(s), {} handler(s), {}\n",
            self.id(),
            self.get_ref(),
            self.handler_count(),
            if self.is_destroyed() {
                "destroyed"
            } else {
                "alive"
            }
        );
        self.inner.refs.describe(&mut s);
        s
    }
}

impl fmt::Debug for GrpLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpLock")
            .field("refs", &self.get_ref())
            .field("chain", &self.chain_order())
            .field("destroyed", &self.is_destroyed())
            .finish()
    }
}

impl Inner {
    /// Ends the group's life: runs the destroy handlers in the process that created the
    /// group; in a `fork` child they are forgotten unrun (not even dropped, as what they
    /// captured may release the parent's shared state). False if it had already ended.
    fn end_life(&self) -> bool {
        if std::process::id() == self.creator_pid {
            return self.life.destroy();
        }
        match self.life.end() {
            Some(handlers) => {
                std::mem::forget(handlers);
                true
            }
            None => false,
        }
    }

    /// # Safety
    /// The calling thread holds the group (`owner` is its id).
    #[allow(clippy::mut_from_ref)]
    unsafe fn hold_mut(&self) -> &mut Hold {
        // SAFETY: only the holding thread gets here, and it does not keep two of these
        // references alive at once.
        unsafe { &mut *self.hold.get() }
    }

    fn chain_snapshot(&self) -> Arc<Chain> {
        Arc::clone(&self.chain.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Installs a new chain. Called only while holding `own`.
    fn set_chain(&self, chain: Chain) {
        let nonempty = !chain.links.is_empty();
        *self.chain.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(chain);
        if nonempty {
            self.flags.fetch_or(CHAINED, Release);
        } else {
            self.flags.fetch_and(!CHAINED, Release);
        }
    }

    fn is_destroyed(&self) -> bool {
        self.flags.load(Acquire) & DESTROYED != 0
    }

    #[cold]
    fn dead() -> ! {
        panic!(
            "this group lock was destroyed by force_destroy or replace; a handle used after \
             that is a bug in the caller"
        )
    }

    #[inline]
    fn acquire_or_panic(&self) {
        if self.enter(false) == Got::Dead {
            Self::dead();
        }
    }

    /// Takes the group (recursively if this thread holds it), or with `only_try` gives up
    /// at the first busy lock.
    #[inline]
    fn enter(&self, only_try: bool) -> Got {
        let me = sys::tid();
        if self.owner.load(Relaxed) == me {
            // SAFETY: we hold the group.
            unsafe { self.hold_mut().depth += 1 };
            return Got::Yes;
        }
        if self.flags.load(Relaxed) & CHAINED == 0 {
            // The common case: no chain, only the own lock.
            if only_try {
                if !self.own.try_lock() {
                    return Got::Busy;
                }
            } else {
                self.own.lock();
            }
            // Flags change only under `own`, which we hold: a relaxed load sees the latest.
            if self.flags.load(Relaxed) == 0 {
                self.owner.store(me, Relaxed);
                // SAFETY: we hold `own` and have set `owner`.
                let hold = unsafe { self.hold_mut() };
                hold.depth = 1;
                hold.before = 0;
                return Got::Yes;
            }
            // SAFETY: taken just above by this thread.
            unsafe { self.own.unlock() };
        }
        self.enter_chained(me, only_try)
    }

    /// The general path: take the chain's links and the own lock in ascending pos.
    ///
    /// It never waits while holding anything: a busy lock met after the first is waited for
    /// with everything released, and the attempt starts again from a fresh chain. Acquirers
    /// that read different versions of the chain may order the same two locks differently
    /// (a lock unchained at -1 and chained again at +1); waiting while holding could then
    /// deadlock, which is how PJLIB hangs when a lock is unchained under traffic.
    #[cold]
    fn enter_chained(&self, me: u32, only_try: bool) -> Got {
        'attempt: loop {
            let chain = self.chain_snapshot();
            let split = chain.before_own();
            // What this attempt has taken. Dropping it (on a give-up, a retry, or a panic in
            // a chained lock's acquire) releases all of it, in reverse.
            let mut taken = Taken {
                inner: self,
                split: usize::MAX, // until the own lock is taken, every link goes before it
                links: Vec::with_capacity(chain.links.len()),
                own: false,
            };
            for step in 0..=chain.links.len() {
                let holding = taken.own || !taken.links.is_empty();
                // Step `split` is the own lock; the others are links, before and after it.
                let link = match step.cmp(&split) {
                    std::cmp::Ordering::Less => Some(&chain.links[step]),
                    std::cmp::Ordering::Equal => None,
                    std::cmp::Ordering::Greater => Some(&chain.links[step - 1]),
                };
                // A destroyed group in the chain guards nothing any more: skipped, so that
                // destroying a chained group before unchaining it does not brick the groups
                // that chain it. (Destroyed between this look and its acquire, it panics,
                // and `taken` releases what this attempt holds.)
                if link.is_some_and(|l| l.lock.as_group().is_some_and(GrpLock::is_destroyed)) {
                    continue;
                }
                let got = match link {
                    Some(l) if !holding && !only_try => {
                        l.lock.chain_acquire();
                        true
                    }
                    Some(l) => l.lock.chain_try_acquire(),
                    None if !holding && !only_try => {
                        self.own.lock();
                        true
                    }
                    None => self.own.try_lock(),
                };
                if !got {
                    drop(taken);
                    if only_try {
                        return Got::Busy;
                    }
                    // Wait, holding nothing, until the busy lock is free; then start again.
                    match link {
                        Some(l) => {
                            l.lock.chain_acquire();
                            // SAFETY: taken just above by this thread.
                            unsafe { l.lock.chain_release() };
                        }
                        None => {
                            self.own.lock();
                            // SAFETY: taken just above by this thread.
                            unsafe { self.own.unlock() };
                        }
                    }
                    continue 'attempt;
                }
                match link {
                    Some(l) => taken.links.push((Arc::clone(&l.lock), l.pos)),
                    None => {
                        taken.own = true;
                        // The links taken so far go before the own lock (skipped dead
                        // groups make this fewer than the chain's count).
                        taken.split = taken.links.len();
                        if self.is_destroyed() {
                            return Got::Dead; // `taken` releases everything
                        }
                        // Edits happen only under `own`, which we now hold: from here on the
                        // chain cannot change, so the snapshot must be the current one.
                        if self.chain_snapshot().version != chain.version {
                            continue 'attempt;
                        }
                    }
                }
            }
            let before = taken.split;
            let links = taken.keep();
            self.owner.store(me, Relaxed);
            // SAFETY: we hold `own` and have set `owner`.
            let hold = unsafe { self.hold_mut() };
            hold.depth = 1;
            hold.before = before;
            hold.links = links;
            return Got::Yes;
        }
    }

    /// Releases one level; the outermost release gives back every lock taken, in reverse.
    ///
    /// # Safety
    /// The calling thread holds the group.
    #[inline]
    unsafe fn release(&self) {
        // SAFETY: per the contract.
        let hold = unsafe { self.hold_mut() };
        hold.depth -= 1;
        if hold.depth > 0 {
            return;
        }
        if hold.links.is_empty() {
            self.owner.store(0, Relaxed);
            // SAFETY: this thread took it in `enter`.
            unsafe { self.own.unlock() };
            return;
        }
        // Move what we took out of `hold` before giving up the own lock: after that, the
        // next holder owns `hold`.
        let mut links = std::mem::take(&mut hold.links);
        let before = hold.before;
        while links.len() > before {
            let (l, _) = links.pop().expect("len > before");
            // SAFETY: this thread took it in `enter` or `chain_lock`.
            unsafe { l.chain_release() };
        }
        self.owner.store(0, Relaxed);
        // SAFETY: this thread took it in `enter`.
        unsafe { self.own.unlock() };
        while let Some((l, _)) = links.pop() {
            // SAFETY: this thread took it in `enter`.
            unsafe { l.chain_release() };
        }
    }
}

/// The locks one attempt at the group has taken so far; released, in reverse, when dropped
/// (unless kept), so that no path out of an attempt, a panic included, leaves one held.
struct Taken<'a> {
    inner: &'a Inner,
    /// How many of `links` were taken before the own lock (`usize::MAX` until it is).
    split: usize,
    links: Vec<(Arc<dyn ChainLock>, i32)>,
    own: bool,
}

impl Taken<'_> {
    /// The attempt succeeded: the caller records the links as the hold.
    fn keep(mut self) -> Vec<(Arc<dyn ChainLock>, i32)> {
        self.own = false;
        std::mem::take(&mut self.links)
    }
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        // Links past `split` are after the own lock: only taken once it was.
        while self.links.len() > self.split {
            let (l, _) = self.links.pop().expect("len checked");
            // SAFETY: taken by this thread in this attempt.
            unsafe { l.chain_release() };
        }
        if std::mem::take(&mut self.own) {
            // SAFETY: as above.
            unsafe { self.inner.own.unlock() };
        }
        while let Some((l, _)) = self.links.pop() {
            // SAFETY: as above.
            unsafe { l.chain_release() };
        }
    }
}

// SAFETY: a group can be chained to another group; acquire and release forward to the
// group's own (recursive) acquire and release by the same thread.
unsafe impl ChainLock for GrpLock {
    fn chain_acquire(&self) {
        self.inner.acquire_or_panic()
    }
    fn chain_try_acquire(&self) -> bool {
        match self.inner.enter(true) {
            Got::Yes => true,
            Got::Busy => false,
            Got::Dead => Inner::dead(),
        }
    }
    fn as_group(&self) -> Option<&GrpLock> {
        Some(self)
    }
    fn chain_id(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }
    unsafe fn chain_release(&self) {
        if self.is_held_by_current_thread() {
            // SAFETY: this thread holds the group (checked just above).
            unsafe { self.inner.release() }
        }
    }
}

enum Hand<'a> {
    Borrowed(&'a GrpLock),
    Owned(GrpLock),
}

/// Proof that this thread holds a group lock; dropping it releases one level.
#[must_use = "the group is released as soon as the guard is dropped"]
pub struct GrpGuard<'a> {
    hand: ManuallyDrop<Hand<'a>>,
    _not_send: PhantomData<*const ()>,
}

impl<'a> GrpGuard<'a> {
    fn new(hand: Hand<'a>) -> Self {
        GrpGuard {
            hand: ManuallyDrop::new(hand),
            _not_send: PhantomData,
        }
    }

    fn group(&self) -> &GrpLock {
        match &*self.hand {
            Hand::Borrowed(g) => g,
            Hand::Owned(g) => g,
        }
    }

    #[inline]
    fn unlock_level(&self) {
        let g = self.group();
        // A forced destroy released everything this thread held; then there is nothing left.
        if g.is_held_by_current_thread() {
            // SAFETY: this thread holds the group (checked just above).
            unsafe { g.inner.release() };
        }
    }

    /// Releases this level now (PJLIB's `pj_grp_lock_release`) and reports whether the
    /// reference the guard owned (see [`GrpLock::lock_owned`]) was the last one, so the
    /// group is gone.
    pub fn release(self) -> Released {
        let mut this = ManuallyDrop::new(self);
        this.unlock_level();
        // SAFETY: `this` is never dropped, so the hand is taken exactly once.
        match unsafe { ManuallyDrop::take(&mut this.hand) } {
            Hand::Borrowed(_) => Released::Alive,
            Hand::Owned(g) => g.dec_ref(),
        }
    }

    /// The group this guard holds.
    pub fn grp_lock(guard: &Self) -> &GrpLock {
        guard.group()
    }
}

impl Drop for GrpGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.unlock_level();
        // SAFETY: dropped once, here.
        drop(unsafe { ManuallyDrop::take(&mut self.hand) });
    }
}

impl fmt::Debug for GrpGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpGuard")
            .field("depth", &self.group().depth())
            .finish()
    }
}
