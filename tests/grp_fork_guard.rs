//! A group's guard that `fork` copied into a child holds nothing there: dropping the copy
//! leaves the parent's chained locks, which may be in shared memory, held by the parent
//! (a copy used to release them: another process could then take a lock the parent's
//! group still held).
//!
//! Its own test binary with one test (a fork child must not meet a lock another test
//! thread held at fork time).

mod common;

use std::sync::atomic::{AtomicU32, Ordering::*};
use std::sync::Arc;

use lockkit::grp::{ChainLock, GrpLock, SetEntry};
use lockkit::ShmRegion;

#[test]
fn a_group_guard_copied_by_fork_releases_none_of_the_parents_chained_locks() {
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let set = Arc::new(region.alloc_lock_set(2).unwrap());
    let seen = region.alloc(AtomicU32::new(0)).unwrap();
    let group = GrpLock::new();
    let entry: Arc<dyn ChainLock> = Arc::new(SetEntry::new(Arc::clone(&set), 0));
    group.chain_lock(entry, -1).unwrap();
    let guard = group.lock();
    let owned = group.clone().lock_owned();
    assert!(set.at(0).is_locked());
    let child = common::fork(|| {
        // SAFETY: the child's own copies of the parent's guards (fork copied the memory
        // they live in), each dropped once, here; the parent's are dropped in the parent.
        let (guard, owned) = unsafe { (std::ptr::read(&guard), std::ptr::read(&owned)) };
        drop(owned);
        drop(guard);
        // 1: still locked after the copies were dropped; 2: this process could take it.
        let code = if set.try_lock(0).is_some() { 2 } else { 1 };
        seen.store(code, Release);
        0
    });
    assert_eq!(child.join(), 0);
    assert_eq!(
        seen.load(Acquire),
        1,
        "the child's copy of the guard released the parent's chained lock"
    );
    assert!(set.at(0).is_locked(), "the parent still holds its group");
    drop(guard);
    drop(owned);
    assert!(!set.at(0).is_locked());
}
