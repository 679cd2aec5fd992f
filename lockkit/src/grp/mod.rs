//! [`GrpLock`]: PJLIB's group lock (`pj_grp_lock_t`) for the threads of one process.
//!
//! A group lock coordinates the members of one logical object (a dialog and its invite
//! session and transactions; an ICE session and its sockets):
//!
//! - **mutual exclusion**, recursive for the thread that holds it;
//! - **lifetime**: every [`GrpLock`] handle is a reference; when the last one goes, the
//!   destroy handlers the members registered run, once, in registration order;
//! - **lock ordering**: external locks chained to the group are taken with it, in ascending
//!   position, and a thread taking the group never waits while holding one of them, so
//!   nobody who goes through the group can deadlock on them.
//!
//! ```
//! use std::sync::Arc;
//! use lockkit::grp::{GrpLock, Released};
//! use lockkit::GenLock;
//!
//! let group = GrpLock::new();                          // pj_grp_lock_create
//! let app_lock = Arc::new(GenLock::new());
//! group.chain_lock(app_lock.clone(), -1).unwrap();     // pj_grp_lock_chain_lock at -1
//! group.add_handler(|| println!("dialog destroyed"));  // pj_grp_lock_add_handler
//!
//! let tsx_ref = group.add_ref();                       // a transaction keeps the group alive
//! {
//!     let _g = group.lock();                           // the group's lock, and app_lock
//!     assert!(app_lock.is_locked());
//! }                                                    // both released
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
//! - **An acquirer never waits while holding anything.** It takes the group's own lock
//!   (waiting for it if need be), then *tries* each chained lock in ascending pos; if one is
//!   busy it gives everything back, waits for that lock holding nothing, and starts again.
//!   So pos orders the chain, but no order can deadlock through the group, and chaining and
//!   unchaining are safe at any time, under traffic (where PJLIB hangs).
//! - `chain_lock` by the thread that holds the group takes the new lock at once, without
//!   waiting ([`ChainError::Busy`] if it is busy: its holder may be waiting for the group).
//!   Chained groups cannot form a cycle ([`ChainError::Cycle`]), and no group may reach one
//!   lock twice ([`ChainError::SharedLock`]: a dialog group over two transaction groups
//!   that chain the same bucket stripe would wait for itself); a group reached twice is
//!   fine, it is recursive. A destroyed group in a
//!   chain is dropped from it the next time the chain is taken.
//! - The guard lends the data of the chained locks ([`GrpGuard::lend`]: a chained lock's own
//!   `lock()` cannot, this thread holds it) and tells of a chained lock whose holder died
//!   ([`GrpGuard::owner_died`], [`GrpGuard::mark_consistent`]), as that lock's guard would.
//! - Destroy runs once whatever the handlers do, runs every handler even if one panics
//!   (then the first panic goes on), and runs a handler only in the process that registered
//!   it: a `fork` child's copy of a group never runs the parent's handlers. A handler must
//!   not own a `GrpLock` of its own group (that reference would keep the group alive
//!   forever): members keep a [`WeakGrpLock`].
//! - [`replace`](GrpLock::replace) makes every handle of the old group a handle of the new
//!   one: members, waiters and chains follow it. It is refused while a thread holds the old
//!   group. (A handle of a replaced group reaches the group that stands for it in one step,
//!   however many replaces lie between; the groups on the way stay allocated while it lives.)
//! - [`force_destroy`](GrpLock::force_destroy) is refused while the calling thread holds the
//!   group (it could be using a member); threads waiting for the group when it goes are told
//!   ([`lock_alive`](GrpLock::lock_alive) returns `Err`, `lock` panics saying so).
//!
//! # Invariants kept
//! - Holder-only state (the depth, the chain) is touched only by the thread holding the
//!   group's own lock. A `&mut` to it never outlives a short access that calls nothing; the
//!   chain walks read the chain (shared) while they call the chained locks, and nothing can
//!   write it meanwhile. So no re-entrant call (a chained group, a handler) can see it
//!   half-changed or hold a second `&mut` to it.
//! - While a thread holds the group it holds exactly the chained locks in the chain.
//! - A guard releases the group it took, even when its handle's group was replaced since.

// The protocol that keeps these invariants, and who wakes each sleeper, is written at the top
// of `inner.rs` (private, so not in the rendered docs).

mod chain;

mod error;
mod graph;
mod guard;
mod inner;
mod lend;
mod life;
mod member;
#[cfg(all(test, loom))]
mod model;
mod sync;

use std::fmt;
use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Weak};
use std::time::Duration;

#[cfg(feature = "grp-debug")]
#[cfg_attr(docsrs, doc(cfg(feature = "grp-debug")))]
pub use crate::report::group_refs::live_groups;
pub use chain::{AsLockSet, ChainLock, FieldLock, SetEntry};
pub use error::{ChainError, Destroyed, ForceDestroyError, Released, ReplaceError};
pub use guard::GrpGuard;
pub use lend::{GrpLent, GuardsData};
pub use life::HandlerId;
pub use member::{GrpMember, Member, MemberGuard};

use crate::report::group_refs;
use guard::Hand;
use inner::{release_ref, Fail, Inner, Mode};

/// Numbers groups, for handler ids (never reused while the process lives).
static NEXT_GROUP: AtomicU64 = AtomicU64::new(1);

/// A reference to a group lock. Cloning adds a reference, dropping removes one; the last one
/// destroys the group.
pub struct GrpLock {
    inner: ManuallyDrop<Arc<Inner>>,
    ref_id: group_refs::RefId,
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

    /// A reference to the group (or to the group that replaced it), or `None` if it was
    /// destroyed.
    #[track_caller]
    pub fn upgrade(&self) -> Option<GrpLock> {
        let inner = self.inner.upgrade()?;
        if inner.resolve().is_destroyed() {
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
        let _ = release_ref(unsafe { ManuallyDrop::take(&mut self.inner) });
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn destroyed() -> ! {
    panic!(
        "this group lock was destroyed by force_destroy (before or while this thread waited \
         for it); use lock_alive where that can happen, to get Err(Destroyed) instead"
    )
}

impl GrpLock {
    /// A new group with one reference: this handle (PJLIB's `pj_grp_lock_create`).
    #[track_caller]
    pub fn new() -> GrpLock {
        let inner = Arc::new(Inner::new(NEXT_GROUP.fetch_add(1, Relaxed)));
        #[cfg(feature = "lock-debug")]
        inner.home.store(Arc::as_ptr(&inner) as usize, Relaxed);
        GrpLock::from_arc(inner)
    }

    #[track_caller]
    fn from_arc(inner: Arc<Inner>) -> GrpLock {
        let ref_id = inner.refs.record();
        GrpLock {
            inner: ManuallyDrop::new(inner),
            ref_id,
        }
    }

    /// The reference this handle holds, without giving it back.
    fn into_arc(self) -> Arc<Inner> {
        let mut this = ManuallyDrop::new(self);
        this.inner.refs.forget(this.ref_id);
        // SAFETY: `this` is never dropped (ManuallyDrop), so the Arc is taken exactly once.
        unsafe { ManuallyDrop::take(&mut this.inner) }
    }

    /// The handle that stands for this one: itself, or (after `replace`) the new group's.
    fn resolved(&self) -> &GrpLock {
        let mut h = self;
        while let Some(f) = h.inner.forward() {
            h = f;
        }
        h
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
    /// impossible. After a [`replace`](GrpLock::replace), the old group's handles together
    /// hold one reference to the new group: `Gone` means the new group went.
    pub fn dec_ref(self) -> Released {
        release_ref(self.into_arc())
    }

    /// The number of references (PJLIB's `pj_grp_lock_get_ref`), handles and owned guards
    /// included (after a `replace`, those of the new group; all the old group's handles
    /// count as one). A snapshot: other threads may change it at once.
    pub fn get_ref(&self) -> usize {
        Arc::strong_count(&self.resolved().inner)
    }

    /// Whether the group was destroyed by [`force_destroy`](GrpLock::force_destroy) while
    /// this handle still exists.
    pub fn is_destroyed(&self) -> bool {
        self.inner.resolve().is_destroyed()
    }

    /// Takes the group: its own lock, then the chained locks in ascending pos (PJLIB's
    /// `pj_grp_lock_acquire`; see the module docs for why the own lock comes first and why
    /// this never waits while holding a lock). Recursive: the holding thread may lock
    /// again; the group is released when the last guard goes.
    ///
    /// After a [`replace`](GrpLock::replace), takes the new group (and so does a thread
    /// that was waiting when the group was replaced).
    ///
    /// # Panics
    /// If the group was destroyed by [`force_destroy`](GrpLock::force_destroy), before or
    /// while this thread waited. Where that can happen, use
    /// [`lock_alive`](GrpLock::lock_alive).
    #[inline]
    #[cfg_attr(feature = "lock-debug", track_caller)]
    pub fn lock(&self) -> GrpGuard<'_> {
        match enter(&self.inner, Mode::Wait) {
            Ok(held) => GrpGuard::new(held, Hand::Borrowed(self)),
            Err(_) => destroyed(),
        }
    }

    /// Like [`lock`](GrpLock::lock), but tells a group destroyed by `force_destroy` (before
    /// or while this thread waited) with `Err(Destroyed)` instead of panicking.
    #[cfg_attr(feature = "lock-debug", track_caller)]
    pub fn lock_alive(&self) -> Result<GrpGuard<'_>, Destroyed> {
        match enter(&self.inner, Mode::Wait) {
            Ok(held) => Ok(GrpGuard::new(held, Hand::Borrowed(self))),
            Err(_) => Err(Destroyed),
        }
    }

    /// Like [`lock`](GrpLock::lock), but the guard owns this reference, so it can outlive
    /// every other handle and its release can be the one that destroys the group.
    #[cfg_attr(feature = "lock-debug", track_caller)]
    pub fn lock_owned(self) -> GrpGuard<'static> {
        let held: *const Inner = match enter(&self.inner, Mode::Wait) {
            Ok(held) => held,
            Err(_) => destroyed(),
        };
        // SAFETY: `held` is this handle's group or the group it forwards to, which live as
        // long as the handle, now owned by the guard.
        GrpGuard::new(unsafe { &*held }, Hand::Owned(self))
    }

    /// Takes the group if it and all its chained locks are free (PJLIB's
    /// `pj_grp_lock_tryacquire`); on failure every lock it took is released again.
    ///
    /// # Panics
    /// If the group was destroyed by `force_destroy`.
    #[cfg_attr(feature = "lock-debug", track_caller)]
    pub fn try_lock(&self) -> Option<GrpGuard<'_>> {
        match enter(&self.inner, Mode::Try) {
            Ok(held) => Some(GrpGuard::new(held, Hand::Borrowed(self))),
            Err(Fail::Busy) => None,
            Err(Fail::Dead) => destroyed(),
        }
    }

    /// Takes the group, waiting at most `timeout` in all for its own lock and its chained
    /// locks; `None` when the time is up (every lock it took is released again).
    ///
    /// # Panics
    /// If the group was destroyed by `force_destroy`.
    #[cfg_attr(feature = "lock-debug", track_caller)]
    pub fn try_lock_for(&self, timeout: Duration) -> Option<GrpGuard<'_>> {
        match enter(&self.inner, Mode::within(timeout)) {
            Ok(held) => Some(GrpGuard::new(held, Hand::Borrowed(self))),
            Err(Fail::Busy) => None,
            Err(Fail::Dead) => destroyed(),
        }
    }

    /// Whether the calling thread holds the group.
    #[inline]
    pub fn is_held_by_current_thread(&self) -> bool {
        self.inner.resolve().held_by_me()
    }

    /// How many times the calling thread holds the group (0 if it does not).
    pub fn depth(&self) -> usize {
        self.inner.resolve().depth()
    }

    /// Registers a destroy handler (PJLIB's `pj_grp_lock_add_handler`): it runs once, when the
    /// last reference goes, after the handlers registered before it, in this process only
    /// (see the module docs on `fork`). The closure owns what it destroys (the member).
    ///
    /// Returns `None`, dropping the closure without running it, if the group was already
    /// destroyed.
    pub fn add_handler(&self, destroy: impl FnOnce() + Send + 'static) -> Option<HandlerId> {
        let mut handler: life::Handler = Box::new(destroy);
        let mut g: &Inner = &self.inner;
        loop {
            match g.life.add(g.id, handler) {
                Ok(id) => return Some(id),
                // Ended: destroyed, or replaced (then the handler goes to the new group).
                Err(back) => match g.forward() {
                    Some(f) => {
                        g = &f.inner;
                        handler = back;
                    }
                    None => return None,
                },
            }
        }
    }

    /// Unregisters a handler (PJLIB's `pj_grp_lock_del_handler`) for a member that leaves
    /// early; the closure is dropped without running. Returns false if `id` is not
    /// registered with this group (never was, already removed, or the group was destroyed).
    pub fn del_handler(&self, id: HandlerId) -> bool {
        let mut g: &Inner = &self.inner;
        loop {
            if g.life.remove(id) {
                return true;
            }
            match g.forward() {
                Some(f) => g = &f.inner,
                None => return false,
            }
        }
    }

    /// The number of registered destroy handlers (0 once destroyed).
    pub fn handler_count(&self) -> usize {
        self.inner.resolve().life.len().unwrap_or(0)
    }

    /// Chains an external lock at `pos` (PJLIB's `pj_grp_lock_chain_lock`): from now on,
    /// taking the group takes it too. Locks with a lower pos are taken first; a new lock
    /// goes before existing ones of equal pos.
    ///
    /// Waits for the group's own lock like [`lock`](GrpLock::lock), unless the calling
    /// thread holds the group: then the new lock is taken at once, so that its release comes
    /// with the group's, and `Err(ChainError::Busy)` if it is busy (waiting for it while
    /// holding the group could deadlock with its holder). Nothing changes on an error.
    ///
    /// Refused with [`ChainError::SharedLock`] when a group would then reach one lock
    /// twice (this group and a group it chains both chaining it, say): its acquire would
    /// find the lock held by itself. A group reached twice is fine (it is recursive).
    pub fn chain_lock(&self, lock: Arc<dyn ChainLock>, pos: i32) -> Result<(), ChainError> {
        Inner::chain_lock(&self.inner, lock, pos)
    }

    /// Removes a chained lock (PJLIB's `pj_grp_lock_unchain_lock`); if the calling thread
    /// holds the group, the lock is released now. Returns false if it was not chained (or
    /// the group was destroyed). Waits for the group's own lock like `chain_lock`. Safe at
    /// any time, including while other threads acquire and release the group.
    ///
    /// The lock is found by its [`chain_id`](ChainLock::chain_id), not by the `Arc`: any
    /// handle of the lock that was chained will do (for a chained group, an `Arc` of any of
    /// its `GrpLock` handles), so there is no need to keep the `Arc` passed to `chain_lock`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use lockkit::grp::{ChainLock, GrpLock};
    ///
    /// let dialog = GrpLock::new();
    /// let tsx = GrpLock::new();
    /// dialog.chain_lock(Arc::new(tsx.add_ref()), 1).unwrap(); // the chain holds a reference
    /// let same: Arc<dyn ChainLock> = Arc::new(tsx.add_ref());
    /// assert!(dialog.unchain_lock(&same)); // and gives it back
    /// assert!(!dialog.unchain_lock(&same)); // no longer chained
    /// assert_eq!(tsx.get_ref(), 2); // `tsx` and `same`
    /// ```
    ///
    /// # Panics
    /// Only with a panic of the unchained lock's own code: its release (when the caller holds
    /// the group), or its drop when the chain held the last reference to it (a chained
    /// group's destroy handlers run then). The lock is unchained first, whatever that code
    /// does; then the first panic goes on. And, changing nothing, when the caller holds the
    /// group and the data of that lock (or of a lock that chained group holds) is lent by a
    /// [`GrpGuard::lend`] that is still alive: the lock would be released under the lend.
    pub fn unchain_lock(&self, lock: &Arc<dyn ChainLock>) -> bool {
        self.inner.unchain_lock(&**lock)
    }

    /// The chained locks' positions in ascending order, with the group's own lock shown as
    /// the 0 after the links with `pos <= 0` (where PJLIB takes it). Waits for the group's
    /// own lock like `chain_lock`.
    pub fn chain_order(&self) -> Vec<i32> {
        self.inner.positions(true).unwrap_or_else(|| vec![0])
    }

    /// Moves the destroy handlers of `old` to `new` (appended after `new`'s own) and ends
    /// `old` without running them (PJLIB's `pj_grp_lock_replace`).
    ///
    /// Afterwards every handle of `old` stands for `new`: locking one takes `new` (threads
    /// already waiting in `lock` get `new` too), members of `old` live on in `new`, a chain
    /// that holds `old` takes `new`, and `old`'s handles together hold one reference to
    /// `new`. `old`'s own chained locks are unchained (`new` keeps its own chain).
    ///
    /// Refused, with nothing changed, while any thread holds `old` (or is taking it), when
    /// `new` chains `old` (it would chain itself), and when a group that chains `old` would
    /// then reach one lock twice ([`ReplaceError::SharedLock`]).
    #[track_caller]
    pub fn replace(old: &GrpLock, new: &GrpLock) -> Result<(), ReplaceError> {
        Inner::replace(old, new)
    }

    /// Destroys the group now, whatever its reference count (PJLIB's `pj_lock_destroy` on a
    /// group lock): waits until no other thread holds it, unchains its chained locks, and
    /// runs the destroy handlers.
    ///
    /// Refused with [`ForceDestroyError::HeldByCaller`] while the calling thread holds the
    /// group, perhaps through a group that chains it (a member may be lent: the handlers
    /// would drop it under the caller's feet).
    ///
    /// **Dangerous**: members may still be reachable by holders of other references, and
    /// every other handle is left pointing at a dead group: `lock`, `try_lock` and
    /// `try_lock_for` panic, [`lock_alive`](GrpLock::lock_alive) returns `Err(Destroyed)`,
    /// and the same goes for threads that were waiting for the group when it was destroyed.
    /// Prefer giving references back.
    pub fn force_destroy(&self) -> Result<(), ForceDestroyError> {
        self.inner.force_destroy()
    }

    /// The `chain_id`s of every lock (not a group) that taking this group takes, through
    /// its chain and the chains of the groups it reaches (for `locked!`, which must not
    /// name one of them beside the group).
    pub(crate) fn locks_reached(&self) -> Vec<usize> {
        let mut keep = Vec::new();
        let ids = {
            let _graph = graph::lock();
            graph::locks_reached(self.inner.resolve(), &mut keep)
        };
        drop(keep);
        ids
    }

    /// A description of the group for finding leaked references: the count and, with the
    /// `grp-debug` feature, where each live reference was taken (`file:line:column`).
    pub fn dump(&self) -> String {
        let g = self.resolved();
        let mut s = format!(
            "group lock {:#x}: {} reference(s), {} handler(s), {}\n",
            g.chain_id(),
            self.get_ref(),
            self.handler_count(),
            if self.is_destroyed() {
                "destroyed"
            } else {
                "alive"
            }
        );
        g.inner.refs.describe(&mut s);
        s
    }
}

impl fmt::Debug for GrpLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("GrpLock");
        d.field("refs", &self.get_ref());
        // Never waits: a group held by another thread shows its chain as busy.
        match self.inner.positions(false) {
            Some(order) => d.field("chain", &order),
            None => d.field("chain", &format_args!("<busy>")),
        };
        d.field("destroyed", &self.is_destroyed()).finish()
    }
}

// SAFETY: a group can be chained to another group (or taken by `locked!` with other locks);
// acquire and release forward to the group's own recursive acquire and release by the same
// thread, and a release finds the group it took (the handle's, or the one that replaced it:
// a held group is never replaced).
unsafe impl ChainLock for GrpLock {
    fn chain_acquire(&self) {
        if enter(&self.inner, Mode::Wait).is_err() {
            destroyed()
        }
    }
    fn chain_try_acquire(&self) -> bool {
        match enter(&self.inner, Mode::Try) {
            Ok(_) => true,
            Err(Fail::Busy) => false,
            Err(Fail::Dead) => destroyed(),
        }
    }
    fn chain_try_acquire_for(&self, timeout: Duration) -> bool {
        match enter(&self.inner, Mode::within(timeout)) {
            Ok(_) => true,
            Err(Fail::Busy) => false,
            Err(Fail::Dead) => destroyed(),
        }
    }
    unsafe fn chain_release(&self) {
        let g = self.inner.resolve();
        if g.held_by_me() {
            // SAFETY: this thread holds the group (checked just above).
            unsafe { g.release() }
        }
    }
    fn chain_id(&self) -> usize {
        self.inner.resolve() as *const Inner as usize
    }
    fn chain_group(&self) -> Option<&GrpLock> {
        Some(self)
    }
    fn chain_owner_died(&self) -> bool {
        let g = self.inner.resolve();
        // SAFETY: this thread holds the group (checked first).
        g.held_by_me() && unsafe { g.owner_died() }
    }
    unsafe fn chain_mark_consistent(&self) {
        let g = self.inner.resolve();
        if g.held_by_me() {
            // SAFETY: this thread holds the group (checked just above).
            unsafe { g.mark_consistent() }
        }
    }
}

/// `inner.enter(mode)`, seen by the lock-order checker (feature `lock-debug`): the group
/// counts as one lock, taken where `lock()` was called; its chained locks, which it only
/// tries, are held beside it.
#[inline(always)]
#[cfg_attr(feature = "lock-debug", track_caller)]
fn enter(inner: &Inner, mode: Mode) -> Result<&Inner, inner::Fail> {
    #[cfg(feature = "lock-debug")]
    if !inner.resolve().held_by_me() {
        use crate::lock_hooks::{acquired, before_wait, What};
        let site = std::panic::Location::caller();
        let held = matches!(mode, Mode::Wait)
            .then(|| before_wait(inner.resolve() as *const Inner as usize, What::Group, site))
            .flatten();
        let taken = inner.enter(mode);
        if let Ok(g) = &taken {
            acquired(*g as *const Inner as usize, What::Group, site, held);
        }
        return taken;
    }
    inner.enter(mode)
}
