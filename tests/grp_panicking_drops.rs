//! User code that runs inside the group lock's own operations and panics: a destroy
//! handler of a chained group dropped with the chain, the `Drop` of a dead link's owner.
//! Neither may skip another group's handlers or leave a group held with no guard.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering::*};
use std::sync::Arc;
use std::time::Duration;

use lockkit::grp::{FieldLock, GrpLock};

#[test]
fn force_destroy_runs_its_handlers_when_a_chained_groups_handler_panics() {
    let ran = Arc::new(AtomicUsize::new(0));
    let (a, b) = (GrpLock::new(), GrpLock::new());
    b.add_handler(|| panic!("b's handler")).unwrap();
    let r = Arc::clone(&ran);
    a.add_handler(move || {
        r.fetch_add(1, SeqCst);
    })
    .unwrap();
    // A's chain holds B's last handle: destroying A drops it, which destroys B.
    a.chain_lock(Arc::new(b), 1).unwrap();
    let res = catch_unwind(AssertUnwindSafe(|| a.force_destroy()));
    assert!(res.is_err(), "b's handler's panic is passed on");
    assert!(a.is_destroyed());
    assert_eq!(ran.load(SeqCst), 1, "a's own handler ran, once");
    assert!(
        a.add_handler(|| {}).is_none(),
        "a destroyed group takes no handler"
    );
    drop(a);
    assert_eq!(ran.load(SeqCst), 1, "and not again with the last handle");
}

/// Something chained through a field: its `Drop` is user code.
struct Holder {
    group: GrpLock,
}

impl Drop for Holder {
    fn drop(&mut self) {
        panic!("the holder's drop");
    }
}

#[test]
fn a_panicking_drop_of_a_dead_link_leaves_the_group_free() {
    let (a, b) = (GrpLock::new(), GrpLock::new());
    let link = FieldLock::new(Arc::new(Holder { group: b.clone() }), |h| &h.group);
    a.chain_lock(Arc::new(link), 1).unwrap();
    // B dies; A finds it dead at its next acquisition and drops the link, which drops the
    // holder, which panics.
    b.force_destroy().unwrap();
    drop(b);
    let res = catch_unwind(AssertUnwindSafe(|| drop(a.lock())));
    assert!(res.is_err(), "the drop's panic is passed on");
    assert!(!a.is_held_by_current_thread(), "a is held with no guard");
    let other = a.clone();
    let got = std::thread::spawn(move || other.try_lock_for(Duration::from_secs(5)).is_some())
        .join()
        .unwrap();
    assert!(got, "another thread could not take a within 5 s");
    assert!(a.try_lock().is_some());
}
