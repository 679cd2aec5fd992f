//! Members of a group: values that only their group destroys, and that are reached only
//! while holding the group lock. `#[grp_member]` implements [`GrpMember`] for a struct.

use std::cell::{Cell, UnsafeCell};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use std::time::Duration;

use super::{ChainLock, GrpGuard, GrpLock, HandlerId, WeakGrpLock};

/// A value that belongs to a group lock (PJLIB's group member): registered with a destroy
/// handler, destroyed by the group when its reference count reaches zero, never before.
///
/// Implement it with `#[grp_member]`, which also checks the hook's signature and fills in
/// the member's `#[grp]` field.
pub trait GrpMember: Send + Sized + 'static {
    /// Runs when the group destroys the member (the count reached zero), before the value
    /// is dropped. The default does nothing, leaving the work to `Drop`.
    fn on_destroy(&mut self) {}

    /// Points the member's `#[grp]` field at its group (a weak reference: a member that
    /// owned a reference to its group would keep the group alive forever).
    fn set_group(&mut self, group: WeakGrpLock);
}

struct Cell_<T> {
    /// `None` once the group destroyed the member or it left.
    value: UnsafeCell<Option<T>>,
    /// Whether a guard lends the value now; the group lock is recursive, and two guards of
    /// one thread must not both hand out `&mut T`.
    lent: Cell<bool>,
}

// SAFETY: `value` and `lent` are only accessed by the thread holding the group lock (or by
// the destroy handler, which runs when no reference, and so no holder, is left).
unsafe impl<T: Send> Sync for Cell_<T> {}
// SAFETY: as above; T: Send lets the value move to whichever thread destroys it.
unsafe impl<T: Send> Send for Cell_<T> {}

/// A handle to a member of a group. It holds a reference to the group, so the group (and
/// the member) live at least as long as the handle; drop it, and the member is destroyed
/// when the group's last reference goes.
///
/// ```
/// use lockkit::grp::{GrpLock, Member, GrpMember, WeakGrpLock};
///
/// struct Tsx { group: WeakGrpLock, retries: u32 }
/// impl GrpMember for Tsx {
///     fn on_destroy(&mut self) { println!("tsx destroyed after {} retries", self.retries) }
///     fn set_group(&mut self, g: WeakGrpLock) { self.group = g }
/// }
///
/// let dialog = GrpLock::new();
/// let tsx = Member::join(&dialog, Tsx { group: WeakGrpLock::new(), retries: 0 });
/// tsx.lock().retries += 1;           // only under the group lock
/// drop(tsx);                         // the member lives on: the dialog still holds it
/// drop(dialog);                      // last reference: "tsx destroyed after 1 retries"
/// ```
pub struct Member<T: GrpMember> {
    group: GrpLock,
    cell: Arc<Cell_<T>>,
    handler: HandlerId,
}

impl<T: GrpMember> Member<T> {
    /// Adds `value` to `group`: takes a reference to the group (held by the returned handle)
    /// and registers the destroy handler that will run `on_destroy` and drop the value.
    ///
    /// # Panics
    /// If the group was already destroyed (by `force_destroy` or `replace`).
    #[track_caller]
    pub fn join(group: &GrpLock, mut value: T) -> Member<T> {
        value.set_group(group.downgrade());
        let cell = Arc::new(Cell_ {
            value: UnsafeCell::new(Some(value)),
            lent: Cell::new(false),
        });
        let c = Arc::clone(&cell);
        let handler = group
            .add_handler(move || {
                // SAFETY: destroy handlers run when no reference is left, so nobody holds the
                // group or can reach `value`.
                if let Some(mut v) = unsafe { (*c.value.get()).take() } {
                    v.on_destroy();
                }
            })
            .unwrap_or_else(|| panic!("Member::join: the group was already destroyed"));
        Member {
            group: group.add_ref(),
            cell,
            handler,
        }
    }

    /// Takes the group lock and lends the member. After a
    /// [`replace`](GrpLock::replace), that is the new group's lock: the member lives there
    /// now.
    ///
    /// # Panics
    /// If this thread already holds a guard of this member (the group lock is recursive,
    /// the member is not), or if the group was destroyed by
    /// [`force_destroy`](GrpLock::force_destroy) (which destroyed the member).
    pub fn lock(&self) -> MemberGuard<'_, T> {
        self.lend(self.group.lock())
    }

    /// Like [`lock`](Member::lock), but `None` if the group (or one of its chained locks) is
    /// busy.
    ///
    /// # Panics
    /// As [`lock`](Member::lock).
    pub fn try_lock(&self) -> Option<MemberGuard<'_, T>> {
        let group = self.group.try_lock()?;
        Some(self.lend(group))
    }

    fn lend<'a>(&'a self, group: GrpGuard<'a>) -> MemberGuard<'a, T> {
        if self.cell.lent.replace(true) {
            drop(group);
            panic!("Member::lock: this thread already holds a guard of this member");
        }
        MemberGuard {
            _group: group,
            cell: &self.cell,
        }
    }

    /// The member's "lent" flag, for `locked!`'s guard to clear.
    pub(crate) fn lent_flag(&self) -> &Cell<bool> {
        &self.cell.lent
    }

    /// Lends the value to `locked!`'s guard, marking it lent (cleared through
    /// [`lent_flag`](Member::lent_flag) when that guard goes).
    ///
    /// # Safety
    /// The calling thread holds the group for the borrow's lifetime.
    ///
    /// # Panics
    /// If this thread already holds a guard (or a lend) of this member.
    // `&self` to `&mut T`: what the `lent` flag and the group lock make exclusive.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn lend_held_value(&self) -> &mut T {
        if self.cell.lent.replace(true) {
            panic!("locked!: this thread already holds a guard of this member");
        }
        // SAFETY: the caller holds the group, and `lent` (set just above, by this thread,
        // which alone touches it while holding the group) makes this the only access.
        unsafe { (*self.cell.value.get()).as_mut() }.expect("present while a handle lives")
    }

    /// The group this member belongs to.
    pub fn group(&self) -> &GrpLock {
        &self.group
    }

    /// Leaves the group early (a transaction that ends before its dialog): unregisters the
    /// destroy handler, gives back the reference, and returns the value without running
    /// `on_destroy`.
    ///
    /// # Panics
    /// If a guard of this member is alive on this thread, or if the group was destroyed by
    /// `force_destroy` (which destroyed the member).
    pub fn leave(self) -> T {
        let value = {
            let _g = self.group.lock();
            assert!(
                !self.cell.lent.get(),
                "Member::leave: a guard of this member is still alive"
            );
            let removed = self.group.del_handler(self.handler);
            debug_assert!(removed, "the handler is registered while the handle lives");
            // SAFETY: we hold the group lock and no guard lends the value.
            unsafe { (*self.cell.value.get()).take() }
        };
        value.expect("a member's value is present while its handle lives")
    }
}

// SAFETY: forwards to the member's group handle (its own ChainLock, whose contract then
// holds); `chain_group` names that group, as the contract asks. The value is lent only by
// `locked!`'s guard, through its `lent` flag.
unsafe impl<T: GrpMember> ChainLock for Member<T> {
    fn chain_acquire(&self) {
        self.group.chain_acquire()
    }
    fn chain_try_acquire(&self) -> bool {
        self.group.chain_try_acquire()
    }
    fn chain_try_acquire_for(&self, timeout: Duration) -> bool {
        self.group.chain_try_acquire_for(timeout)
    }
    unsafe fn chain_release(&self) {
        // SAFETY: forwarded contract.
        unsafe { self.group.chain_release() }
    }
    fn chain_id(&self) -> usize {
        self.group.chain_id()
    }
    fn chain_group(&self) -> Option<&GrpLock> {
        Some(&self.group)
    }
    fn chain_owner_died(&self) -> bool {
        self.group.chain_owner_died()
    }
    unsafe fn chain_mark_consistent(&self) {
        // SAFETY: forwarded contract.
        unsafe { self.group.chain_mark_consistent() }
    }
}

impl<T: GrpMember> fmt::Debug for Member<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Member")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

/// The member, lent while the group lock is held.
pub struct MemberGuard<'a, T> {
    _group: GrpGuard<'a>,
    cell: &'a Cell_<T>,
}

impl<T> Deref for MemberGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the group lock is held and `lent` makes this the only guard; the value is
        // present while a handle lives (only the handler, at count zero, takes it).
        unsafe { (*self.cell.value.get()).as_ref() }.expect("present while a handle lives")
    }
}

impl<T> DerefMut for MemberGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only access.
        unsafe { (*self.cell.value.get()).as_mut() }.expect("present while a handle lives")
    }
}

impl<T> Drop for MemberGuard<'_, T> {
    fn drop(&mut self) {
        self.cell.lent.set(false);
    }
}
