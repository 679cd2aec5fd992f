//! What the group lock's operations report.

use std::fmt;

/// What giving back a reference did (PJLIB returns `PJ_EGONE` for `Gone`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Released {
    /// Other references remain; the group lives on.
    Alive,
    /// That was the last reference: the group was destroyed and its handlers ran.
    Gone,
}

/// Why chaining a lock failed. Nothing was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainError {
    /// The lock is already in this group's chain.
    AlreadyChained,
    /// A group cannot be chained to itself.
    SelfChain,
    /// The lock is a group that already chains this group (directly or through other
    /// groups): taking either would take the other, forever.
    Cycle,
    /// A group would reach one lock twice: the lock is chained to this group or to a group
    /// it reaches (directly or through other groups) and the new link leads to it again, or
    /// a group that reaches this one does. Taking such a chain would find the lock busy,
    /// held by the taker itself. (A group reached twice is fine: it is recursive.)
    SharedLock,
    /// The calling thread holds the group, so the new lock must be taken now (its release
    /// comes with the group's), and it is busy. Waiting for it while holding the group
    /// could deadlock (its holder may be waiting for the group), so `chain_lock` does not
    /// wait: release the group and chain it again.
    Busy,
    /// This group, or the group being chained, was destroyed.
    Destroyed,
}

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChainError::AlreadyChained => "the lock is already chained to this group",
            ChainError::SelfChain => "a group lock cannot be chained to itself",
            ChainError::Cycle => {
                "the lock is a group that already chains this group: chaining it would make \
                 a cycle"
            }
            ChainError::SharedLock => {
                "a group would reach this lock twice (it is already chained to this group, to a \
                 group it chains, or to a group that chains this one): its acquire would wait \
                 for itself"
            }
            ChainError::Busy => {
                "this thread holds the group and the lock is busy; waiting for it here could \
                 deadlock: release the group and chain it again"
            }
            ChainError::Destroyed => "the group (or the group being chained) was destroyed",
        })
    }
}
impl std::error::Error for ChainError {}

/// Why [`GrpLock::replace`](super::GrpLock::replace) refused. Nothing was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplaceError {
    /// Some thread (perhaps the caller) holds the old group, or is taking it.
    OldGroupHeld,
    /// The old group was already destroyed or replaced.
    OldGroupGone,
    /// The new group was already destroyed.
    NewGroupGone,
    /// Old and new are the same group.
    SameGroup,
    /// The new group chains the old one (directly or through other groups): after the
    /// replace it would chain itself.
    Cycle,
    /// A group that chains the old one would then reach one lock twice: through the new
    /// group and through another of its links (see [`ChainError::SharedLock`]).
    SharedLock,
}

impl fmt::Display for ReplaceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReplaceError::OldGroupHeld => {
                "the old group is held by a thread; release it before replacing it"
            }
            ReplaceError::OldGroupGone => "the old group was already destroyed or replaced",
            ReplaceError::NewGroupGone => "the new group was already destroyed",
            ReplaceError::SameGroup => "a group cannot replace itself",
            ReplaceError::Cycle => {
                "the new group chains the old one: after the replace it would chain itself"
            }
            ReplaceError::SharedLock => {
                "a group that chains the old group would reach one lock twice through the new \
                 one"
            }
        })
    }
}
impl std::error::Error for ReplaceError {}

/// Why [`GrpLock::force_destroy`](super::GrpLock::force_destroy) refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForceDestroyError {
    /// The calling thread holds the group (perhaps through a group that chains it, perhaps
    /// with a member lent): destroying it would drop members the caller can still reach.
    /// Release it first.
    HeldByCaller,
    /// The group was already destroyed.
    AlreadyDestroyed,
}

impl fmt::Display for ForceDestroyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ForceDestroyError::HeldByCaller => {
                "this thread holds the group (a member may be lent): release it before \
                 destroying it"
            }
            ForceDestroyError::AlreadyDestroyed => "the group was already destroyed",
        })
    }
}
impl std::error::Error for ForceDestroyError {}

/// The group was destroyed by [`force_destroy`](super::GrpLock::force_destroy) (before or
/// while the caller waited for it): what [`lock_alive`](super::GrpLock::lock_alive) returns
/// instead of a guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Destroyed;

impl fmt::Display for Destroyed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the group lock was destroyed by force_destroy")
    }
}
impl std::error::Error for Destroyed {}
