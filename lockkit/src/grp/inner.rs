//! A group's state and its protocol: acquire, release, chain edits, destroy, replace.
//!
//! # Who touches what
//! - `own`: the group's own lock. Whoever holds it (a thread taking the group, the group's
//!   holder, or a thread editing the chain) is the *own holder*: it alone reads and edits
//!   `chain` and changes `flags`.
//! - `owner`: the id of the thread that holds the group (own lock and every chained lock),
//!   0 when none. Only that thread stores its own id there, so a thread that reads its own
//!   id holds the group (as in `lock_api`'s `ReentrantMutex`).
//! - `depth`: touched only by the holder, in short accesses that never call out.
//! - `flags`: `CHAINED` (the chain is not empty), `DESTROYED`, `REPLACED`; changed only by
//!   the own holder.
//! - `forward`: set once, by `replace`, holding the old group's own lock and the graph lock,
//!   before `REPLACED`; never cleared while the group lives. A handle of a replaced group
//!   stands for the group it forwards to ([`Inner::resolve`]).
//! - `edges`: the group's place in the graph of chains (the groups it chains, the groups that
//!   chain it, its other chained locks), edited only under the graph lock (`graph.rs`).
//!
//! # The invariant that makes release simple
//! While a thread holds the group, it holds exactly the locks in the chain: acquire verifies
//! nothing (it reads the chain holding the own lock, and nobody else can edit it then), and a
//! holder that chains or unchains a lock takes or releases it at once. So the outermost
//! release walks the chain backwards; nothing records what was taken, nothing allocates.
//!
//! # Acquire never waits while holding anything
//! The own lock is taken first (waiting for it, holding nothing), then the chained locks in
//! ascending pos, each only *tried*. A busy one: everything taken is given back, the thread
//! waits for that lock holding nothing, gives it back and starts again. A thread taking the
//! group therefore never blocks anyone while it waits, whatever pos says and however the
//! chain changes meanwhile (PJLIB, which waits holding the locks before, hangs when a lock is
//! unchained at -1 and chained again at +1 under traffic).
//! A destroyed group met in the chain is dropped from it. A panic at any point (a chained
//! lock's own code) gives back everything the attempt took ([`Undo`], [`OwnHeld`]).
//!
//! # Liveness: who wakes each sleeper
//! - A thread waiting for the own lock sleeps on its futex; every path that unlocks it
//!   (release, a busy or failed attempt, a chain edit, destroy, replace, a panic) wakes it.
//! - A thread waiting for a busy chained lock holds nothing of the group's; that lock's
//!   holder releases it on its own, and nothing it waits for can be held by the sleeper.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::chain::{insert_at, same_lock, ChainLock, Link};
use super::error::{ChainError, ForceDestroyError, ReplaceError};
use super::life::{run, Entry, Life};
use super::sync::{tid, AtomicPtr, AtomicU32, AtomicU8, HolderCell, Mutex, Ordering::*, OwnLock};
use super::{graph, GrpLock};
use crate::report::group_refs;

/// The chain is not empty.
pub(crate) const CHAINED: u8 = 1;
/// Destroyed by `force_destroy` (or the last reference, or a replace whose new group died).
pub(crate) const DESTROYED: u8 = 2;
/// Replaced: `forward` leads to the group that stands for this one.
pub(crate) const REPLACED: u8 = 4;

/// How long an acquirer may wait.
#[derive(Clone, Copy)]
pub(crate) enum Mode {
    Wait,
    Try,
    Until(Instant),
}

impl Mode {
    /// Waiting at most `timeout` (forever if the deadline cannot be represented).
    pub(crate) fn within(timeout: Duration) -> Mode {
        Instant::now()
            .checked_add(timeout)
            .map_or(Mode::Wait, Mode::Until)
    }
}

/// Time left before `deadline`, `None` if it passed.
fn left(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
}

/// Why an acquire did not take the group.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Fail {
    /// A lock was busy (only in `Try` and `Until` modes).
    Busy,
    /// The group was destroyed.
    Dead,
}

pub(crate) struct Inner {
    own: OwnLock,
    owner: AtomicU32,
    depth: HolderCell<usize>,
    flags: AtomicU8,
    chain: HolderCell<Vec<Link>>,
    forward: OnceLock<GrpLock>,
    /// Null, or the last group of this one's forwards seen so far, so that a group replaced
    /// many times over resolves in one step. Sound because every group on the line of
    /// forwards is kept alive by this one's `forward` (a strong reference, never cleared
    /// while this group lives).
    shortcut: AtomicPtr<Inner>,
    pub(crate) edges: Mutex<graph::Edges>,
    /// Unique among groups of this process, for handler ids.
    pub(crate) id: u64,
    pub(crate) life: Life,
    pub(crate) refs: group_refs::Refs,
    /// Where the group lives (its `Arc`'s allocation): the address the lock-order checker
    /// knows it by, set once the group is in its `Arc`.
    #[cfg(feature = "lock-debug")]
    pub(crate) home: std::sync::atomic::AtomicUsize,
}

// SAFETY: `depth` is touched only by the group's holder and `chain` only by the own
// holder (see the module docs), one thread at a time, ordered by the own lock's
// acquire/release; every other field is Sync.
unsafe impl Sync for Inner {}
// SAFETY: the chain's locks are Send + Sync; nothing in a group is tied to a thread.
unsafe impl Send for Inner {}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last reference is gone: nobody holds the group (a guard is a reference).
        self.flags.fetch_or(DESTROYED, Relaxed);
        // First, so a panicking handler cannot skip it; by the address the checker knew the
        // group by (`release_ref` moves the group out of its allocation to drop it).
        #[cfg(feature = "lock-debug")]
        crate::lock_hooks::group_gone(self.home.load(Relaxed));
        self.life.destroy();
    }
}

/// This thread holds the own lock (and is not the group's holder): dropping this, on any
/// path including a panic, unlocks it.
struct OwnHeld<'a>(&'a Inner);

impl Drop for OwnHeld<'_> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: made only right after this thread took the own lock.
        unsafe { self.0.own.unlock() }
    }
}

/// Gives back, in reverse, the first `taken` chained locks, when dropped (on a busy lock or
/// a panic); forgotten when the acquire succeeds.
struct Undo<'a> {
    group: &'a Inner,
    taken: usize,
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        let taken = self.taken;
        // SAFETY: this thread holds the own lock and took the first `taken` links. The
        // access is shared and lasts the walk, which calls out, but nothing writes the chain
        // meanwhile (see `Inner::try_chain`).
        unsafe { self.group.chain.with(|c| release_all(&c[..taken])) };
    }
}

/// Gives back every lock of `links`, last first. If one panics, the others are still given
/// back (a second panic aborts).
///
/// # Safety
/// The calling thread holds the own lock of the group whose chain `links` is (or is part
/// of), and holds each of these locks through it.
#[inline]
unsafe fn release_all(links: &[Link]) {
    /// The links not given back yet; on unwind, gives them back.
    struct Rest<'a>(&'a [Link]);
    impl Drop for Rest<'_> {
        fn drop(&mut self) {
            for l in self.0.iter().rev() {
                // SAFETY: per `release_all`'s contract.
                unsafe { l.get().chain_release() };
            }
        }
    }
    let mut rest = Rest(links);
    while let Some((last, init)) = rest.0.split_last() {
        rest.0 = init;
        // SAFETY: per the contract.
        unsafe { last.get().chain_release() };
    }
    // Empty now: nothing left to do on the normal path.
    std::mem::forget(rest);
}

/// While the common chained path tries the chain: on unwind (a chained lock's code
/// panicked), gives back the first `taken` links and the own lock.
struct Trying<'a> {
    group: &'a Inner,
    links: &'a [Link],
    taken: usize,
}

impl Drop for Trying<'_> {
    fn drop(&mut self) {
        // SAFETY: this thread holds the own lock and took these links.
        unsafe { release_all(&self.links[..self.taken]) };
        // SAFETY: this thread took the own lock in `enter`.
        unsafe { self.group.own.unlock() };
    }
}

/// The graph's record of one link of `group`'s chain (an edge to the group `sub`, or the
/// lock `id`), taken back when dropped: `chain_link` forgets it once the link is in the
/// chain, and a refusal or a panic before that drops it.
struct Recorded<'a> {
    group: &'a Inner,
    sub: Option<&'a Inner>,
    id: usize,
}

impl Drop for Recorded<'_> {
    fn drop(&mut self) {
        let _graph = graph::lock();
        forget_link(self.group, self.sub, self.id);
    }
}

/// Forgets the graph's record of one link of `group`'s chain (see [`Recorded`]). The graph
/// lock is held.
fn forget_link(group: &Inner, sub: Option<&Inner>, id: usize) {
    match sub {
        Some(s) => graph::remove_edge(group, s),
        None => graph::remove_leaf(group, id),
    }
}

/// What trying one chained lock gave.
enum Try {
    Taken,
    Busy,
    Gone,
}

/// Tries `lock` (`group`: it is a group lock, whose death is told apart from busy).
#[inline(always)]
fn try_link(lock: &dyn ChainLock, group: bool) -> Try {
    if group {
        if let Some(g) = lock.chain_group() {
            return try_group(g);
        }
    }
    if lock.chain_try_acquire() {
        Try::Taken
    } else {
        Try::Busy
    }
}

#[inline(never)]
fn try_group(g: &GrpLock) -> Try {
    match g.inner.enter(Mode::Try) {
        Ok(_) => Try::Taken,
        Err(Fail::Busy) => Try::Busy,
        Err(Fail::Dead) => Try::Gone,
    }
}

/// Waits, as `mode` allows, until `lock` was free once (taking and giving it back), holding
/// nothing. False if `mode` gave up.
fn wait_for(lock: &dyn ChainLock, group: bool, mode: Mode) -> bool {
    // A try never waits, not even for a lock (a group) that would be free at once: taking it
    // again may fail again, for ever (a chain that reaches one lock twice through handles
    // that hide it, issue 22.1).
    if matches!(mode, Mode::Try) {
        return false;
    }
    if let Some(g) = group.then(|| lock.chain_group()).flatten() {
        return match g.inner.enter(mode) {
            Ok(held) => {
                // SAFETY: taken just above by this thread.
                unsafe { held.release() };
                true
            }
            // Start again: the walk drops the dead group from the chain.
            Err(Fail::Dead) => true,
            Err(Fail::Busy) => false,
        };
    }
    let got = match mode {
        Mode::Wait => {
            lock.chain_acquire();
            true
        }
        Mode::Try => false,
        Mode::Until(deadline) => left(deadline).is_some_and(|d| lock.chain_try_acquire_for(d)),
    };
    if got {
        // SAFETY: taken just above by this thread.
        unsafe { lock.chain_release() };
    }
    got
}

impl Inner {
    pub(crate) fn new(id: u64) -> Inner {
        Inner {
            own: OwnLock::new(),
            owner: AtomicU32::new(0),
            depth: HolderCell::new(0),
            flags: AtomicU8::new(0),
            chain: HolderCell::new(Vec::new()),
            forward: OnceLock::new(),
            shortcut: AtomicPtr::new(std::ptr::null_mut()),
            edges: Mutex::new(graph::Edges::default()),
            id,
            life: Life::new(),
            refs: group_refs::Refs::new(id),
            #[cfg(feature = "lock-debug")]
            home: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The group this one stands for: itself, or the end of its `replace` forwards.
    #[inline]
    pub(crate) fn resolve(&self) -> &Inner {
        if self.forward.get().is_none() {
            return self;
        }
        self.resolve_forwards()
    }

    #[cold]
    fn resolve_forwards(&self) -> &Inner {
        let short = self.shortcut.load(Acquire);
        let mut g: &Inner = if short.is_null() {
            self
        } else {
            // SAFETY: set below to a group on this one's line of forwards, which this
            // group's `forward` keeps alive (see the field).
            unsafe { &*short }
        };
        while let Some(f) = g.forward.get() {
            g = &f.inner;
        }
        self.shortcut
            .store(g as *const Inner as *mut Inner, Release);
        g
    }

    /// The handle of the group this one was replaced by, if it was.
    pub(crate) fn forward(&self) -> Option<&GrpLock> {
        self.forward.get()
    }

    pub(crate) fn is_destroyed(&self) -> bool {
        self.flags.load(Acquire) & DESTROYED != 0
    }

    /// Whether the calling thread holds this group (not following forwards).
    #[inline]
    pub(crate) fn held_by_me(&self) -> bool {
        self.owner.load(Relaxed) == tid()
    }

    /// How many levels the calling thread holds (0 if none).
    pub(crate) fn depth(&self) -> usize {
        if self.held_by_me() {
            // SAFETY: this thread holds the group; the access is short.
            unsafe { self.depth.with(|d| *d) }
        } else {
            0
        }
    }

    /// Takes the group (one more level if this thread holds it), as `mode` allows. Returns
    /// the group actually taken: this one, or the one it was replaced by.
    #[inline(always)]
    pub(crate) fn enter(&self, mode: Mode) -> Result<&Inner, Fail> {
        let me = tid();
        if self.owner.load(Relaxed) == me {
            // SAFETY: this thread holds the group; the access is short.
            unsafe { self.depth.with_mut(|d| *d += 1) };
            return Ok(self);
        }
        // A replaced group is never taken again: go straight to the group that stands for
        // it. (A stale flag is caught under the own lock below.)
        if self.flags.load(Relaxed) & REPLACED != 0 {
            return self.enter_replaced(mode);
        }
        if !self.take_own(mode) {
            return Err(Fail::Busy);
        }
        // Flags change only under the own lock, which this thread holds: a relaxed load
        // sees the latest.
        let flags = self.flags.load(Relaxed);
        if flags == 0 || (flags == CHAINED && self.try_chain()) {
            self.become_holder(me);
            return Ok(self);
        }
        self.enter_slow(me, mode)
    }

    /// The common chained case: tries every chained lock, in order. True if all were taken;
    /// otherwise (one was busy, or is a dead group) gives back what it took and returns
    /// false, leaving the own lock held, for `enter_slow` to sort out.
    ///
    /// Out of line: inlined, its loop crowds the unchained fast path (spills to the stack,
    /// 1.2x a bare GenLock instead of 1.0x in `cargo bench --bench lock_overhead`).
    #[inline(never)]
    fn try_chain(&self) -> bool {
        // SAFETY: this thread holds the own lock. The access is shared and lasts the walk;
        // it calls out (the chained locks' code), but nothing can write the chain
        // meanwhile: only an own holder does, which is this thread, and it does not here
        // (a re-entrant edit would first have to take the own lock, and panics instead).
        unsafe {
            self.chain.with(|links| {
                let mut trying = Trying {
                    group: self,
                    links,
                    taken: 0,
                };
                for l in links {
                    if !matches!(try_link(l.get(), l.group), Try::Taken) {
                        let taken = trying.taken;
                        std::mem::forget(trying);
                        release_all(&links[..taken]);
                        return false;
                    }
                    trying.taken += 1;
                }
                std::mem::forget(trying);
                true
            })
        }
    }

    #[inline(always)]
    fn take_own(&self, mode: Mode) -> bool {
        match mode {
            Mode::Wait => {
                self.own.lock();
                true
            }
            Mode::Try => self.own.try_lock(),
            Mode::Until(deadline) => {
                self.own.try_lock() || left(deadline).is_some_and(|d| self.own.try_lock_for(d))
            }
        }
    }

    #[inline(always)]
    fn become_holder(&self, me: u32) {
        self.owner.store(me, Relaxed);
        // SAFETY: this thread holds the own lock and every chained lock, and has just
        // become the holder; the access is short.
        unsafe { self.depth.with_mut(|d| *d = 1) };
    }

    #[cold]
    #[inline(never)]
    fn enter_replaced(&self, mode: Mode) -> Result<&Inner, Fail> {
        self.resolve().enter(mode)
    }

    /// The own lock is held; the group is chained, destroyed or replaced.
    #[cold]
    #[inline(never)]
    fn enter_slow(&self, me: u32, mode: Mode) -> Result<&Inner, Fail> {
        // Dead groups dropped from the chain, let go of once this thread holds nothing or
        // holds the group (dropping one can run code).
        let mut dead: Vec<Arc<dyn ChainLock>> = Vec::new();
        let mut held = OwnHeld(self);
        loop {
            let flags = self.flags.load(Relaxed);
            if flags & REPLACED != 0 {
                drop(held);
                // Holding nothing: dropping a dead group can run its handlers, and one that
                // panics after the new group was taken would leave that group held with no
                // guard to give it back.
                drop(std::mem::take(&mut dead));
                return self.resolve().enter(mode);
            }
            if flags & DESTROYED != 0 {
                return Err(Fail::Dead);
            }
            match self.take_links(&mut dead) {
                Ok(()) => {
                    std::mem::forget(held);
                    self.become_holder(me);
                    // Dropping a dead group can run its handlers: one that panics must not
                    // leave this group held with no guard to give it back.
                    if let Err(p) = catch_unwind(AssertUnwindSafe(|| drop(dead))) {
                        // SAFETY: this thread became the holder just above.
                        unsafe { self.release() };
                        resume_unwind(p);
                    }
                    return Ok(self);
                }
                Err((busy, group)) => {
                    drop(held);
                    let waited = wait_for(&*busy, group, mode);
                    drop(busy);
                    // The deadline is checked on every round, not only by the waits: a lock
                    // that is free when waited for but busy when tried (one reached twice
                    // through handles that hide it) would keep a timed call going for ever.
                    let expired = matches!(mode, Mode::Until(d) if left(d).is_none());
                    if !waited || expired || !self.take_own(mode) {
                        return Err(Fail::Busy);
                    }
                    held = OwnHeld(self);
                }
            }
        }
    }

    /// Tries every chained lock in order. On a busy one, gives back what it took and returns
    /// that lock (kept alive for the caller to wait on).
    ///
    /// The own lock is held by this thread (the caller's [`OwnHeld`] gives it back).
    fn take_links(
        &self,
        dead: &mut Vec<Arc<dyn ChainLock>>,
    ) -> Result<(), (Arc<dyn ChainLock>, bool)> {
        let mut undo = Undo {
            group: self,
            taken: 0,
        };
        loop {
            let i = undo.taken;
            // SAFETY: this thread holds the own lock; the access is short.
            let next = unsafe {
                self.chain
                    .with(|c| c.get(i).map(|l| (Arc::as_ptr(&l.lock), l.group)))
            };
            let Some((lock, group)) = next else {
                break;
            };
            // SAFETY: the `Arc` stays in the chain while this thread holds the own lock and
            // does not edit it: only own holders edit the chain, and this one does so only
            // after the call below returns.
            let lock: &dyn ChainLock = unsafe { &*lock };
            match try_link(lock, group) {
                Try::Taken => undo.taken += 1,
                Try::Busy => {
                    // SAFETY: as above.
                    let busy = unsafe { self.chain.with(|c| Arc::clone(&c[i].lock)) };
                    drop(undo); // gives back what this attempt took, in reverse
                    return Err((busy, group));
                }
                Try::Gone => {
                    // SAFETY: as above; the own holder edits the chain.
                    let empty = unsafe {
                        self.chain.with_mut(|c| {
                            dead.push(c.remove(i).lock);
                            c.is_empty()
                        })
                    };
                    if empty {
                        self.flags.fetch_and(!CHAINED, Release);
                    }
                }
            }
        }
        std::mem::forget(undo);
        Ok(())
    }

    /// Whether a holder of one of the chained locks died holding it, and nobody marked it
    /// consistent since (see [`ChainLock::chain_owner_died`]).
    ///
    /// # Safety
    /// The calling thread holds the group.
    pub(crate) unsafe fn owner_died(&self) -> bool {
        // SAFETY: this thread holds the group, so the own lock. The access is shared and
        // lasts the walk, which calls out, but nothing writes the chain meanwhile (see
        // `try_chain`); the holder holds every chained lock (the module's invariant).
        unsafe {
            self.chain
                .with(|links| links.iter().any(|l| l.get().chain_owner_died()))
        }
    }

    /// Whether the chain, or the chain of a group it chains, holds the lock (not a group)
    /// whose `chain_id` is `id`.
    ///
    /// # Safety
    /// The calling thread holds the group.
    pub(crate) unsafe fn chain_holds(&self, id: usize) -> bool {
        // SAFETY: as in `owner_died`.
        unsafe {
            self.chain.with(|links| {
                links.iter().any(|l| match l.get().chain_group() {
                    None => l.id == id,
                    Some(g) => {
                        let g = g.inner.resolve();
                        // SAFETY: the holder holds every chained group (the invariant).
                        g.held_by_me() && g.chain_holds(id)
                    }
                })
            })
        }
    }

    /// Marks every chained lock whose holder died consistent again.
    ///
    /// # Safety
    /// The calling thread holds the group.
    pub(crate) unsafe fn mark_consistent(&self) {
        // SAFETY: as in `owner_died`; and the holder holds each of these locks.
        unsafe {
            self.chain.with(|links| {
                for l in links.iter().filter(|l| l.get().chain_owner_died()) {
                    l.get().chain_mark_consistent();
                }
            })
        }
    }

    /// Gives back one level; the outermost release gives back every chained lock, in
    /// reverse, then the own lock.
    ///
    /// # Safety
    /// The calling thread holds the group.
    #[inline]
    pub(crate) unsafe fn release(&self) {
        // SAFETY: the caller holds the group; the access is short.
        let last = unsafe {
            self.depth.with_mut(|d| {
                *d -= 1;
                *d == 0
            })
        };
        if !last {
            return;
        }
        #[cfg(feature = "lock-debug")]
        crate::lock_hooks::released(self as *const Inner as usize);
        self.owner.store(0, Relaxed);
        if self.flags.load(Relaxed) & CHAINED != 0 {
            self.release_chain();
        } else {
            // SAFETY: this thread took it in `enter`.
            unsafe { self.own.unlock() };
        }
    }

    #[inline]
    fn release_chain(&self) {
        let held = OwnHeld(self);
        // SAFETY: this thread holds the own lock. The access is shared and lasts the walk,
        // which calls out, but nothing writes the chain meanwhile (see `try_chain`); the
        // holder holds every chained lock (the module's invariant).
        unsafe { self.chain.with(|links| release_all(links)) };
        drop(held);
    }

    /// Takes the own lock for an edit, unless this thread holds the group: then it is
    /// already held. Follows replaced groups; `None` if the group is destroyed. Returns the
    /// group taken, and the token that gives its own lock back (`None` for the holder).
    fn for_edit(&self, wait: bool) -> Result<(&Inner, Option<OwnHeld<'_>>), Fail> {
        let mut g = self.resolve();
        loop {
            if g.held_by_me() {
                return Ok((g, None));
            }
            if wait {
                g.own.lock();
            } else if !g.own.try_lock() {
                return Err(Fail::Busy);
            }
            let held = OwnHeld(g);
            let flags = g.flags.load(Relaxed);
            if flags & REPLACED != 0 {
                drop(held);
                g = g.resolve();
                continue;
            }
            if flags & DESTROYED != 0 {
                return Err(Fail::Dead);
            }
            return Ok((g, Some(held)));
        }
    }

    /// The positions of the chain, with the own lock as a 0 after the links of pos <= 0.
    /// `wait`: wait for the own lock (else `None` when it is busy).
    pub(crate) fn positions(&self, wait: bool) -> Option<Vec<i32>> {
        let order = |c: &Vec<Link>| {
            let mut v: Vec<i32> = c.iter().map(|l| l.pos).collect();
            v.insert(c.iter().take_while(|l| l.pos <= 0).count(), 0);
            v
        };
        match self.for_edit(wait) {
            // SAFETY: this thread holds the own lock; the access is short.
            Ok((g, held)) => {
                let v = unsafe { g.chain.with(order) };
                drop(held);
                Some(v)
            }
            Err(Fail::Dead) => Some(vec![0]),
            Err(Fail::Busy) => None,
        }
    }

    /// `GrpLock::chain_lock`. `this`: the handle's group.
    pub(crate) fn chain_lock(
        this: &Arc<Inner>,
        lock: Arc<dyn ChainLock>,
        pos: i32,
    ) -> Result<(), ChainError> {
        // Group references taken for the graph searches, let go of holding nothing.
        let mut keep: Vec<Arc<Inner>> = Vec::new();
        let link = Link::new(lock, pos);
        let r = Inner::chain_link(this, link, &mut keep);
        drop(keep);
        r.map_err(|(e, link)| {
            drop(link);
            e
        })
    }

    fn chain_link(
        this: &Arc<Inner>,
        link: Link,
        keep: &mut Vec<Arc<Inner>>,
    ) -> Result<(), (ChainError, Option<Link>)> {
        // The chain's locks as they were, kept alive (declared before `held`, so dropped after
        // it: a last reference's drop runs user code, which must not run under the own lock).
        let present: Vec<Arc<dyn ChainLock>>;
        let (g, held) = match this.for_edit(true) {
            Ok(x) => x,
            Err(_) => return Err((ChainError::Destroyed, Some(link))),
        };
        // `g` as an `Arc`, for the graph's weak references to it. `g` cannot be replaced
        // meanwhile: this thread holds its own lock, or holds the group.
        let mut g_arc = this;
        while let Some(f) = g_arc.forward() {
            g_arc = &f.inner;
        }
        debug_assert!(std::ptr::eq(&**g_arc, g));
        let holder = held.is_none();
        let sub: Option<Arc<Inner>> = link.lock.chain_group().map(|s| Arc::clone(&*s.inner));
        // `keep` (dropped by the caller, holding nothing) holds one too, so `sub` is never
        // the last reference whichever way this returns.
        keep.extend(sub.clone());
        if let Some(s) = &sub {
            let s = s.resolve();
            if std::ptr::eq(s, g) {
                return Err((ChainError::SelfChain, Some(link)));
            }
            if s.is_destroyed() {
                return Err((ChainError::Destroyed, Some(link)));
            }
        }
        // Clones, not pointers: `same_lock` runs `chain_id`, which for some locks is user code
        // (a lock set's `lock_set`) that could unchain a link and free it meanwhile.
        // SAFETY: this thread holds the own lock; the access is short (clones the Arcs).
        present = unsafe {
            g.chain
                .with(|c| c.iter().map(|l| Arc::clone(&l.lock)).collect())
        };
        if present.iter().any(|p| same_lock(&**p, &*link.lock)) {
            return Err((ChainError::AlreadyChained, Some(link)));
        }
        let recorded = {
            let _graph = graph::lock();
            match &sub {
                Some(s) => {
                    if graph::reaches(s, g, keep) {
                        return Err((ChainError::Cycle, Some(link)));
                    }
                    if graph::would_share(g, Ok(s.resolve()), keep) {
                        return Err((ChainError::SharedLock, Some(link)));
                    }
                    graph::add_edge(g_arc, s);
                }
                None => {
                    if graph::would_share(g, Err(link.id), keep) {
                        return Err((ChainError::SharedLock, Some(link)));
                    }
                    graph::add_leaf(g, link.id);
                }
            }
            Recorded {
                group: g,
                sub: sub.as_deref(),
                id: link.id,
            }
        };
        if holder {
            // The holder holds every chained lock: take this one now, without waiting (its
            // holder may be waiting for this group). Should the try panic, `recorded` takes
            // the graph's record back on the way out.
            let got = match try_link(&*link.lock, link.group) {
                Try::Taken => Ok(()),
                Try::Busy => Err(ChainError::Busy),
                Try::Gone => Err(ChainError::Destroyed),
            };
            if let Err(e) = got {
                drop(recorded);
                return Err((e, Some(link)));
            }
        }
        std::mem::forget(recorded);
        // SAFETY: the own holder edits the chain; the access is short.
        unsafe { g.chain.with_mut(|c| c.insert(insert_at(c, link.pos), link)) };
        g.flags.fetch_or(CHAINED, Release);
        drop(held);
        Ok(())
    }

    /// `GrpLock::unchain_lock`.
    pub(crate) fn unchain_lock(&self, lock: &dyn ChainLock) -> bool {
        // As in `chain_link`: clones kept alive past the own lock.
        let present: Vec<Arc<dyn ChainLock>>;
        let (g, held) = match self.for_edit(true) {
            Ok(x) => x,
            Err(_) => return false,
        };
        // SAFETY: this thread holds the own lock; the access is short (clones the Arcs).
        present = unsafe {
            g.chain
                .with(|c| c.iter().map(|l| Arc::clone(&l.lock)).collect())
        };
        let Some(found) = present.iter().find(|p| same_lock(&***p, lock)) else {
            return false;
        };
        if held.is_none() {
            // The holder would release the lock now, while a lend of its data (through the
            // group's guard) may be alive: another thread could then take it and reach the
            // data too.
            let lent = super::lend::lent_locks();
            let found: &dyn ChainLock = &**found;
            let busy = lent.iter().any(|&id| match found.chain_group() {
                None => found.chain_id() == id,
                Some(s) => {
                    let s = s.inner.resolve();
                    // SAFETY: the holder holds every chained group (the invariant).
                    s.held_by_me() && unsafe { s.chain_holds(id) }
                }
            });
            if busy {
                drop(held);
                lent_unchained();
            }
        }
        // Found by identity now, not by the position seen before `same_lock` ran user code.
        // SAFETY: the own holder edits the chain; the access is short.
        let Some((link, empty)) = (unsafe {
            g.chain.with_mut(|c| {
                let i = c.iter().position(|l| Arc::ptr_eq(&l.lock, found))?;
                let link = c.remove(i);
                Some((link, c.is_empty()))
            })
        }) else {
            return false;
        };
        if empty {
            g.flags.fetch_and(!CHAINED, Release);
        }
        // The graph first: the code that runs below (the lock's release, the drop of the
        // chain's reference) may panic, and must not leave a record of a link that is gone.
        let sub = link.group.then(|| link.lock.chain_group()).flatten();
        {
            let _graph = graph::lock();
            forget_link(g, sub.map(|s| &**s.inner), link.id);
        }
        // Both, whatever either does; the first panic goes on once the lock is unchained.
        let released = catch_unwind(AssertUnwindSafe(|| {
            if held.is_none() {
                // The holder took it with the group: give it back now.
                // SAFETY: this thread holds it (the module's invariant).
                unsafe { link.lock.chain_release() };
            }
        }));
        drop(held);
        let dropped = catch_unwind(AssertUnwindSafe(|| drop(link)));
        if let Err(p) = released.and(dropped) {
            resume_unwind(p);
        }
        true
    }

    /// Ends the group under its own lock: marks it, takes its chain out and forgets its
    /// subgroups. The caller lets go of the chain holding nothing.
    fn end_locked(&self, flag: u8) -> Vec<Link> {
        self.flags.fetch_or(flag, Release);
        // SAFETY: the caller holds the own lock; the access is short.
        let chain = unsafe { self.chain.with_mut(std::mem::take) };
        self.flags.fetch_and(!CHAINED, Release);
        chain
    }

    /// `GrpLock::force_destroy`.
    pub(crate) fn force_destroy(&self) -> Result<(), ForceDestroyError> {
        let (g, held) = match self.for_edit(true) {
            Ok(x) => x,
            Err(_) => return Err(ForceDestroyError::AlreadyDestroyed),
        };
        let Some(held) = held else {
            // Members the caller can reach would be dropped under its feet.
            return Err(ForceDestroyError::HeldByCaller);
        };
        let chain = g.end_locked(DESTROYED);
        drop(held);
        let mut keep = Vec::new();
        {
            let _graph = graph::lock();
            graph::end(g, None, &mut keep);
        }
        drop(keep);
        // Both, whatever either's user code does: a chained group whose last reference
        // goes with the chain runs its handlers, and one of them panicking must not skip
        // this group's own (the first panic is resumed after both).
        let chain_dropped = catch_unwind(AssertUnwindSafe(|| drop(chain)));
        let destroyed = catch_unwind(AssertUnwindSafe(|| g.life.destroy()));
        if let Err(p) = chain_dropped.and(destroyed) {
            resume_unwind(p);
        }
        Ok(())
    }

    /// `GrpLock::replace`. `#[track_caller]` down to the handle the old group keeps of the
    /// new one, so that `grp-debug` names the caller's line for that reference.
    #[track_caller]
    pub(crate) fn replace(old: &GrpLock, new: &GrpLock) -> Result<(), ReplaceError> {
        let mut keep: Vec<Arc<Inner>> = Vec::new();
        let mut chain = Vec::new();
        let mut orphans: Option<Vec<Entry>> = None;
        let r = Inner::replace_locked(old, new, &mut keep, &mut chain, &mut orphans);
        drop(chain);
        drop(keep);
        if let Some(entries) = orphans {
            run(entries);
        }
        r
    }

    /// The part of `replace` under the graph lock. What it takes out (the old chain, group
    /// references, handlers to run) goes to the caller, to be let go of holding nothing.
    #[track_caller]
    fn replace_locked(
        old: &GrpLock,
        new: &GrpLock,
        keep: &mut Vec<Arc<Inner>>,
        chain: &mut Vec<Link>,
        orphans: &mut Option<Vec<Entry>>,
    ) -> Result<(), ReplaceError> {
        use ReplaceError as E;
        let _graph = graph::lock();
        // Forwards are set only under the graph lock: these stay resolved.
        let (oh, nh) = (old.resolved(), new.resolved());
        let (o, n): (&Inner, &Inner) = (&oh.inner, &nh.inner);
        if std::ptr::eq(o, n) {
            return Err(E::SameGroup);
        }
        if n.is_destroyed() {
            return Err(E::NewGroupGone);
        }
        if o.held_by_me() || !o.own.try_lock() {
            return Err(E::OldGroupHeld);
        }
        let held = OwnHeld(o);
        if o.flags.load(Relaxed) & (DESTROYED | REPLACED) != 0 {
            return Err(E::OldGroupGone);
        }
        if graph::reaches(n, o, keep) {
            return Err(E::Cycle);
        }
        if graph::would_share_after_replace(o, n, keep) {
            return Err(E::SharedLock);
        }
        // Forward first: a handler added (or deleted) from now on that finds the old
        // list ended follows it to the new group.
        let _ = o.forward.set(nh.clone());
        let result = match o.life.end() {
            None => Err(E::OldGroupGone),
            Some(entries) => match n.life.adopt(entries) {
                Ok(()) => Ok(()),
                Err(entries) => {
                    // The new group died meanwhile: the handlers must still run, once.
                    *orphans = Some(entries);
                    Err(E::NewGroupGone)
                }
            },
        };
        *chain = o.end_locked(if result.is_ok() { REPLACED } else { DESTROYED });
        graph::end(o, result.is_ok().then_some(n), keep);
        drop(held);
        result
    }
}

#[cold]
#[track_caller]
fn lent_unchained() -> ! {
    panic!(
        "unchain_lock: this thread holds the group and the data of that lock is lent \
         (GrpGuard::lend); drop the lend first"
    )
}

/// A reference is given back: if it was the last, the group is destroyed (its handlers run)
/// and, if it had been replaced, its reference to the new group is given back in turn.
/// A loop, not a recursion: a group replaced many times over leaves a long line of forwards.
pub(crate) fn release_ref(mut arc: Arc<Inner>) -> super::Released {
    loop {
        let Some(mut inner) = Arc::into_inner(arc) else {
            return super::Released::Alive;
        };
        let forward = inner.forward.take();
        drop(inner);
        match forward {
            Some(f) => arc = f.into_arc(),
            None => return super::Released::Gone,
        }
    }
}
