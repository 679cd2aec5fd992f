//! A lock whose identity is user code (a lock set's `lock_set`, through `SetEntry`'s
//! `chain_id`) that unchains a link while `chain_lock` compares the chain's locks. That breaks
//! `AsLockSet`'s contract, and lockkit must still not touch the freed link: before the fix
//! `chain_lock` walked raw pointers to the links, and called into the freed one.

use std::sync::atomic::{AtomicBool, Ordering::*};
use std::sync::{Arc, OnceLock};

use lockkit::grp::{AsLockSet, ChainLock, GrpLock, SetEntry};
use lockkit::{GenLock, GenLockSet, LockSet};

static SET: GenLockSet<4> = GenLockSet::new();
static GROUP: OnceLock<GrpLock> = OnceLock::new();
static ARMED: AtomicBool = AtomicBool::new(false);
static VICTIM_DROPPED: AtomicBool = AtomicBool::new(false);
static USED_AFTER_DROP: AtomicBool = AtomicBool::new(false);

/// A chained entry that notices being used after its drop.
struct Victim;
// SAFETY: always the same set; it does not touch any group.
unsafe impl AsLockSet for Victim {
    fn lock_set(&self) -> &LockSet {
        if VICTIM_DROPPED.load(SeqCst) {
            USED_AFTER_DROP.store(true, SeqCst);
        }
        &SET
    }
}
impl Drop for Victim {
    fn drop(&mut self) {
        VICTIM_DROPPED.store(true, SeqCst);
    }
}

/// The contract breaker: the first time it is asked for its set, it unchains the victim.
struct Unchainer;
// SAFETY: not kept on purpose (it unchains a link of the group that is chaining it): this
// test checks that lockkit stays memory-safe anyway.
unsafe impl AsLockSet for Unchainer {
    fn lock_set(&self) -> &LockSet {
        if ARMED.swap(false, SeqCst) {
            let victim: Arc<dyn ChainLock> = Arc::new(SetEntry::new(&SET, 1));
            assert!(GROUP.get().unwrap().unchain_lock(&victim));
        }
        &SET
    }
}

#[test]
fn a_link_unchained_from_inside_chain_lock_is_not_used_after_its_drop() {
    let g = GROUP.get_or_init(GrpLock::new);
    g.chain_lock(Arc::new(GenLock::new()), -2).unwrap();
    g.chain_lock(Arc::new(SetEntry::new(Victim, 1)), -1)
        .unwrap();
    // As the holder, chain edits go through without the group's own lock.
    let held = g.lock();
    // Made before arming: `SetEntry::new` asks for the set too.
    let unchainer = Arc::new(SetEntry::new(Unchainer, 2));
    ARMED.store(true, SeqCst);
    g.chain_lock(unchainer, 0).unwrap();
    assert!(!USED_AFTER_DROP.load(SeqCst), "a freed link was called");
    drop(held);
    // The victim's last reference went with the comparison's copy, after the group let go.
    assert!(VICTIM_DROPPED.load(SeqCst));
    assert!(!USED_AFTER_DROP.load(SeqCst), "a freed link was called");
    // The group still works: both remaining locks are taken and given back with it.
    let h = g.lock();
    assert!(SET.at(2).is_locked() && !SET.at(1).is_locked());
    drop(h);
    assert!(!SET.at(2).is_locked());
}
