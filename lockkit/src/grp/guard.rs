//! [`GrpGuard`]: one level of a group held by the current thread.

use std::fmt;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;

use super::inner::Inner;
use super::{GrpLock, Released};

/// The handle a guard came from: borrowed, or owned by the guard (`lock_owned`).
pub(crate) enum Hand<'a> {
    Borrowed(&'a GrpLock),
    Owned(GrpLock),
}

/// Proof that this thread holds a group lock; dropping it releases one level (the last
/// level releases the group and its chained locks).
#[must_use = "the group is released as soon as the guard is dropped"]
pub struct GrpGuard<'a> {
    /// The group actually held: the handle's, or the one it was replaced by. Valid while
    /// `hand` lives: the handle keeps its group alive, and a replaced group keeps the group
    /// it forwards to alive. The pointer also makes the guard `!Send` and `!Sync`: a
    /// level is released by the thread that holds it.
    held: NonNull<Inner>,
    hand: ManuallyDrop<Hand<'a>>,
    /// The process's fork generation when the level was taken: a copy `fork` made holds
    /// nothing in the child, and must not release the parent's chained locks (which may be
    /// in shared memory) when it is dropped there.
    fork_generation: u32,
}

impl<'a> GrpGuard<'a> {
    /// `held`: the group this thread just took one level of, through `hand`.
    #[inline]
    pub(crate) fn new(held: &Inner, hand: Hand<'a>) -> Self {
        GrpGuard {
            held: NonNull::from(held),
            hand: ManuallyDrop::new(hand),
            fork_generation: crate::liveness::fork_generation(),
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
        if self.fork_generation != crate::liveness::fork_generation() {
            // A copy `fork` made: the parent's thread holds the group, not this process.
            return;
        }
        // SAFETY: `held` is valid while the hand lives (see the field), and this thread holds
        // it: the guard is !Send, and neither `force_destroy` nor `replace` touches a group
        // that a thread holds.
        unsafe { self.held.as_ref().release() };
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

    /// Whether the holder of one of the group's chained locks (a lock in shared memory, or
    /// one reached through a chained group) died holding it and nobody has marked it
    /// consistent since: the data those locks guard may be half-updated. The group takes
    /// such a lock over as the lock's own `lock()` does; this tells its acquirer, as the
    /// lock's own guard would ([`GenLockGuard::owner_died`](crate::GenLockGuard::owner_died)).
    /// Repair the data, then call [`mark_consistent`](GrpGuard::mark_consistent).
    pub fn owner_died(guard: &Self) -> bool {
        if guard.fork_generation != crate::liveness::fork_generation() {
            return false; // a copy `fork` made: this process holds nothing through it
        }
        // SAFETY: `held` is valid while the hand lives, and this thread holds it (see
        // `unlock_level`).
        unsafe { guard.held.as_ref().owner_died() }
    }

    /// Declares the data of every chained lock whose holder died repaired, so those locks
    /// are used normally again (see [`owner_died`](GrpGuard::owner_died)). Does nothing if
    /// no holder died.
    pub fn mark_consistent(guard: &mut Self) {
        if guard.fork_generation != crate::liveness::fork_generation() {
            return;
        }
        // SAFETY: as in `owner_died`.
        unsafe { guard.held.as_ref().mark_consistent() }
    }

    /// Lends the data that `lock` guards (a [`ShmMutex`](crate::ShmMutex), or a
    /// [`FieldLock`](super::FieldLock) of one in a shared object), which this group holds
    /// because its chain (or the chain of a group it chains) holds `lock`: the lock's own
    /// `lock()` cannot lend it meanwhile (this thread already holds the lock).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use lockkit::grp::GrpLock;
    /// use lockkit::ShmMutex;
    ///
    /// let region = lockkit::ShmRegion::anonymous(1 << 20)?;
    /// let calls = Arc::new(region.alloc(ShmMutex::new(0u64))?);
    /// let dialog = GrpLock::new();
    /// dialog.chain_lock(calls.clone(), -1).unwrap();
    /// let g = dialog.lock();
    /// *g.lend(&calls) += 1;
    /// drop(g);
    /// assert_eq!(*calls.lock(), 1);
    /// # Ok::<(), lockkit::Error>(())
    /// ```
    ///
    /// # Panics
    /// If the group's chain does not hold `lock`, or its data is lent already on this
    /// thread (by this guard or another), or `fork` copied this guard into this process.
    #[track_caller]
    pub fn lend<'g, L: super::GuardsData + ?Sized>(
        &'g self,
        lock: &'g L,
    ) -> super::GrpLent<'g, L::Data> {
        // SAFETY: the data lock `chain_id` names guards (GuardsData's contract), valid
        // while `lock` is, which outlives 'g.
        unsafe { self.lend_raw(lock.chain_id(), lock.data_ptr()) }
    }

    /// Lends `data`, guarded by the lock (not a group) whose `chain_id` is `id`, if this
    /// group's chain holds that lock.
    ///
    /// # Safety
    /// The lock `id` names guards `data`, which stays valid for 'g.
    ///
    /// # Panics
    /// As [`lend`](GrpGuard::lend).
    #[track_caller]
    pub(crate) unsafe fn lend_raw<'g, T>(
        &'g self,
        id: usize,
        data: *mut T,
    ) -> super::GrpLent<'g, T> {
        if self.fork_generation != crate::liveness::fork_generation() {
            panic!("GrpGuard::lend: a copy `fork` made of a guard holds nothing");
        }
        // SAFETY: `held` is valid while the hand lives, and this thread holds it (see
        // `unlock_level`).
        let held = unsafe { self.held.as_ref() };
        // SAFETY: as above: this thread holds the group.
        if !unsafe { held.chain_holds(id) } {
            panic!("GrpGuard::lend: this group's chain does not hold that lock");
        }
        // SAFETY: the chain holds the lock for as long as the group is held, which is at
        // least 'g (the lend borrows this guard); its data is reached only by this thread,
        // through lends (the lock's own lock() by this thread panics or says busy).
        unsafe { super::GrpLent::new(id, data) }
    }

    /// The handle this guard was taken through.
    pub fn grp_lock(guard: &Self) -> &GrpLock {
        guard.group()
    }
}

impl Drop for GrpGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.unlock_level();
        // SAFETY: dropped once, here.
        unsafe { ManuallyDrop::drop(&mut self.hand) };
    }
}

impl fmt::Debug for GrpGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // SAFETY: valid while the hand lives; this thread holds it.
        let depth = unsafe { self.held.as_ref() }.depth();
        f.debug_struct("GrpGuard").field("depth", &depth).finish()
    }
}
