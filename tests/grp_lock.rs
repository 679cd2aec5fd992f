//! The group lock: references and destroy, handlers, recursion, chained locks and replace,
//! including the cases where PJLIB is known to break.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::*};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use lockkit::grp::{ChainError, ChainLock, GrpLock, Released, ReplaceError, SetEntry};
use lockkit::{GenLock, ShmRegion};

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

#[test]
fn eight_threads_with_two_chained_locks_count_exactly() {
    let group = GrpLock::new();
    let before = Arc::new(GenLock::new());
    let after = Arc::new(GenLock::new());
    group.chain_lock(before.clone(), -1).unwrap();
    group.chain_lock(after.clone(), 5).unwrap();
    let n = counter();
    std::thread::scope(|s| {
        for _ in 0..8 {
            let (group, n, before, after) = (group.clone(), n.clone(), &before, &after);
            s.spawn(move || {
                for _ in 0..20_000 {
                    let _g = group.lock();
                    // Both chained locks are held, by this thread, while the group is.
                    let me = before.owner().unwrap().tid;
                    assert_eq!(after.owner().unwrap().tid, me);
                    n.store(n.load(Relaxed) + 1, Relaxed);
                }
            });
        }
    });
    assert_eq!(n.load(Relaxed), 160_000);
    assert!(!before.is_locked() && !after.is_locked());
}

#[test]
fn the_last_reference_runs_the_handlers_once_in_registration_order() {
    let order = Arc::new(Mutex::new(Vec::new()));
    let group = GrpLock::new();
    for i in 0..4 {
        let order = order.clone();
        group
            .add_handler(move || order.lock().unwrap().push(i))
            .unwrap();
    }
    let second = group.add_ref();
    assert_eq!(group.get_ref(), 2);
    assert_eq!(group.dec_ref(), Released::Alive);
    assert!(order.lock().unwrap().is_empty());
    assert_eq!(second.dec_ref(), Released::Gone);
    assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3]);
}

#[test]
fn references_racing_to_zero_destroy_exactly_once() {
    for _ in 0..300 {
        let ran = counter();
        let gone = counter();
        let group = GrpLock::new();
        let r = ran.clone();
        group.add_handler(move || {
            r.fetch_add(1, SeqCst);
        });
        let barrier = Arc::new(Barrier::new(6));
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let (g, b, gone) = (group.clone(), barrier.clone(), gone.clone());
                std::thread::spawn(move || {
                    b.wait();
                    for _ in 0..10 {
                        let extra = g.add_ref();
                        drop(extra.lock());
                        assert_eq!(extra.dec_ref(), Released::Alive);
                    }
                    if g.dec_ref() == Released::Gone {
                        gone.fetch_add(1, SeqCst);
                    }
                })
            })
            .collect();
        if group.dec_ref() == Released::Gone {
            gone.fetch_add(1, SeqCst);
        }
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(ran.load(SeqCst), 1);
        assert_eq!(gone.load(SeqCst), 1, "exactly one dec_ref reported Gone");
    }
}

#[test]
fn a_handler_dropping_references_to_its_own_group_does_not_destroy_twice() {
    let ran = counter();
    let group = GrpLock::new();
    let weak = group.downgrade();
    let r = ran.clone();
    group.add_handler(move || {
        r.fetch_add(1, SeqCst);
        // The group is gone: a weak reference no longer upgrades, so the handler cannot
        // take a reference and re-enter destroy.
        assert!(weak.upgrade().is_none());
    });
    let r = ran.clone();
    group.add_handler(move || {
        r.fetch_add(1, SeqCst);
    });
    assert_eq!(group.dec_ref(), Released::Gone);
    assert_eq!(ran.load(SeqCst), 2);
}

#[test]
fn del_handler_says_when_the_handler_is_not_registered() {
    let ran = counter();
    let group = GrpLock::new();
    let r = ran.clone();
    let id = group
        .add_handler(move || {
            r.fetch_add(1, SeqCst);
        })
        .unwrap();
    let other = GrpLock::new();
    assert!(!other.del_handler(id), "registered with another group");
    assert!(group.del_handler(id));
    assert!(!group.del_handler(id), "already removed");
    assert_eq!(group.handler_count(), 0);
    drop(group);
    assert_eq!(ran.load(SeqCst), 0, "a removed handler never runs");
}

#[test]
fn the_holding_thread_may_lock_again_and_others_wait_for_the_last_release() {
    let group = GrpLock::new();
    let g1 = group.lock();
    let g2 = group.lock();
    let g3 = group.try_lock().unwrap();
    assert_eq!(group.depth(), 3);
    let other = group.clone();
    let probe = move || {
        std::thread::spawn(move || other.try_lock().is_some())
            .join()
            .unwrap()
    };
    let probe = Arc::new(Mutex::new(Some(probe)));
    let busy = {
        let g = group.clone();
        std::thread::spawn(move || g.try_lock().is_some())
            .join()
            .unwrap()
    };
    assert!(!busy);
    drop(g3);
    drop(g2);
    assert_eq!(group.depth(), 1);
    drop(g1);
    assert_eq!(group.depth(), 0);
    assert!((probe.lock().unwrap().take().unwrap())());
}

#[test]
fn chained_locks_are_taken_in_ascending_pos_around_the_own_lock() {
    let group = GrpLock::new();
    let locks: Vec<Arc<dyn ChainLock>> = (0..5)
        .map(|_| Arc::new(GenLock::new()) as Arc<dyn ChainLock>)
        .collect();
    group.chain_lock(locks[0].clone(), 3).unwrap();
    group.chain_lock(locks[1].clone(), -2).unwrap();
    group.chain_lock(locks[2].clone(), 0).unwrap();
    group.chain_lock(locks[3].clone(), -2).unwrap();
    group.chain_lock(locks[4].clone(), 1).unwrap();
    // The own lock (the second 0) follows chained locks of pos <= 0.
    assert_eq!(group.chain_order(), vec![-2, -2, 0, 0, 1, 3]);
    assert_eq!(
        group.chain_lock(locks[2].clone(), 7),
        Err(ChainError::AlreadyChained)
    );
    let me = Arc::new(group.clone());
    assert_eq!(group.chain_lock(me, 1), Err(ChainError::SelfChain));
    assert!(group.unchain_lock(&locks[2]));
    assert!(!group.unchain_lock(&locks[2]));
    assert_eq!(group.chain_order(), vec![-2, -2, 0, 1, 3]);
}

#[test]
fn chaining_while_held_takes_the_new_lock_so_the_releases_match() {
    let group = GrpLock::new();
    let late = Arc::new(GenLock::new());
    let g1 = group.lock();
    let g2 = group.lock();
    group.chain_lock(late.clone(), 1).unwrap();
    assert!(late.is_locked(), "taken at once by the holder");
    drop(g2);
    assert!(late.is_locked(), "held until the outermost release");
    drop(g1);
    assert!(!late.is_locked());
    // And the next acquisition takes it as part of the chain.
    let g = group.lock();
    assert!(late.is_locked());
    drop(g);
    assert!(!late.is_locked());
}

#[test]
fn chaining_a_busy_lock_before_a_held_one_is_refused_rather_than_taken_out_of_order() {
    let group = GrpLock::new();
    let early = Arc::new(GenLock::new());
    let g = group.lock();
    let elsewhere = {
        let early = early.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            let _held = early.lock();
            tx.send(()).unwrap();
            done_rx.recv().unwrap();
        });
        rx.recv().unwrap();
        (t, done_tx)
    };
    assert_eq!(
        group.chain_lock(early.clone(), -1),
        Err(ChainError::WouldBreakOrder)
    );
    assert_eq!(group.chain_order(), vec![0], "nothing changed");
    elsewhere.1.send(()).unwrap();
    elsewhere.0.join().unwrap();
    // Free now: taking it out of order cannot block, so it is chained and taken.
    group.chain_lock(early.clone(), -1).unwrap();
    assert!(early.is_locked());
    drop(g);
    assert!(!early.is_locked());
}

#[test]
fn a_failed_try_lock_releases_what_it_already_took() {
    let group = GrpLock::new();
    let first = Arc::new(GenLock::new());
    let busy = Arc::new(GenLock::new());
    group.chain_lock(first.clone(), -1).unwrap();
    group.chain_lock(busy.clone(), 2).unwrap();
    let b = busy.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        let _g = b.lock();
        tx.send(()).unwrap();
        done_rx.recv().unwrap();
    });
    rx.recv().unwrap();
    assert!(group.try_lock().is_none());
    assert!(
        !first.is_locked(),
        "the lock before the own lock was given back"
    );
    let other = group.clone();
    assert!(std::thread::spawn(move || {
        // The own lock was given back too: another thread can take the group's own
        // lock, up to the busy chained lock.
        other.try_lock().is_none()
    })
    .join()
    .unwrap());
    done_tx.send(()).unwrap();
    t.join().unwrap();
    assert!(group.try_lock().is_some());
}

#[test]
fn unchaining_while_other_threads_acquire_and_release_never_hangs_or_leaks_a_lock() {
    let group = GrpLock::new();
    let ext: Arc<dyn ChainLock> = Arc::new(GenLock::new());
    let ext2: Arc<dyn ChainLock> = Arc::new(GenLock::new());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let n = counter();
    std::thread::scope(|s| {
        for _ in 0..4 {
            let (group, stop, n) = (group.clone(), stop.clone(), n.clone());
            s.spawn(move || {
                while !stop.load(Relaxed) {
                    let _g = group.lock();
                    n.store(n.load(Relaxed) + 1, Relaxed);
                }
            });
        }
        for i in 0..2_000 {
            let pos = if i % 2 == 0 { -1 } else { 1 };
            group.chain_lock(ext.clone(), pos).unwrap();
            group.chain_lock(ext2.clone(), -pos).unwrap();
            assert!(group.unchain_lock(&ext));
            assert!(group.unchain_lock(&ext2));
        }
        stop.store(true, Relaxed);
    });
    assert!(n.load(Relaxed) > 0);
    let probe = |l: &Arc<dyn ChainLock>| {
        let ok = l.chain_try_acquire();
        if ok {
            // SAFETY: taken just above by this thread.
            unsafe { l.chain_release() };
        }
        ok
    };
    assert!(probe(&ext) && probe(&ext2), "no chained lock was left held");
    assert!(group.try_lock().is_some());
}

#[test]
fn replace_moves_the_handlers_and_kills_the_old_group() {
    let order = Arc::new(Mutex::new(Vec::new()));
    let old = GrpLock::new();
    let new = GrpLock::new();
    let push = |g: &GrpLock, tag: &'static str| {
        let order = order.clone();
        g.add_handler(move || order.lock().unwrap().push(tag))
            .unwrap();
    };
    push(&new, "new-1");
    push(&old, "old-1");
    push(&old, "old-2");
    let ext = Arc::new(GenLock::new());
    old.chain_lock(ext.clone(), -1).unwrap();
    let old_ref = old.add_ref();
    GrpLock::replace(&old, &new).unwrap();
    assert!(old.is_destroyed() && old_ref.is_destroyed());
    assert_eq!(old.chain_order(), vec![0], "the old chain was unchained");
    assert!(old.downgrade().upgrade().is_none());
    drop(old);
    drop(old_ref);
    assert!(order.lock().unwrap().is_empty(), "old's death runs nothing");
    assert_eq!(new.handler_count(), 3);
    assert_eq!(new.dec_ref(), Released::Gone);
    assert_eq!(*order.lock().unwrap(), vec!["new-1", "old-1", "old-2"]);
    assert!(!ext.is_locked());
}

#[test]
fn replace_is_refused_while_a_thread_holds_the_old_group() {
    let old = GrpLock::new();
    let new = GrpLock::new();
    old.add_handler(|| {}).unwrap();
    let g = old.lock();
    assert_eq!(
        GrpLock::replace(&old, &new),
        Err(ReplaceError::OldGroupHeld)
    );
    let o = old.clone();
    let n = new.clone();
    assert_eq!(
        std::thread::spawn(move || GrpLock::replace(&o, &n))
            .join()
            .unwrap(),
        Err(ReplaceError::OldGroupHeld)
    );
    drop(g);
    assert_eq!(old.handler_count(), 1, "nothing moved");
    assert_eq!(
        GrpLock::replace(&old, &old.clone()),
        Err(ReplaceError::SameGroup)
    );
    GrpLock::replace(&old, &new).unwrap();
    assert_eq!(
        GrpLock::replace(&old, &new),
        Err(ReplaceError::OldGroupGone)
    );
}

#[test]
#[should_panic(expected = "destroyed by force_destroy or replace")]
fn locking_a_replaced_group_panics_with_a_clear_message() {
    let old = GrpLock::new();
    let new = GrpLock::new();
    GrpLock::replace(&old, &new).unwrap();
    let _g = old.lock();
}

#[test]
fn force_destroy_runs_the_handlers_once_and_leaves_the_chained_locks_free() {
    let ran = counter();
    let group = GrpLock::new();
    let r = ran.clone();
    group.add_handler(move || {
        r.fetch_add(1, SeqCst);
    });
    let ext = Arc::new(GenLock::new());
    group.chain_lock(ext.clone(), 1).unwrap();
    let other = group.clone();
    let g = group.lock();
    let g2 = group.lock();
    assert!(ext.is_locked());
    // Refused while this thread holds the group (issue 11.1: the handlers would free
    // members still in use through these guards).
    let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| group.force_destroy()));
    assert!(refused.is_err());
    drop(g2);
    drop(g);
    assert!(group.force_destroy());
    assert!(!ext.is_locked(), "the chained lock is free");
    assert_eq!(ran.load(SeqCst), 1);
    assert!(!group.force_destroy());
    drop(other);
    drop(group);
    assert_eq!(ran.load(SeqCst), 1);
}

#[test]
fn an_owned_guard_reports_when_its_release_destroyed_the_group() {
    let ran = counter();
    let group = GrpLock::new();
    let r = ran.clone();
    group.add_handler(move || {
        r.fetch_add(1, SeqCst);
    });
    let keep = group.clone();
    let g = group.lock_owned();
    assert_eq!(keep.dec_ref(), Released::Alive);
    assert_eq!(ran.load(SeqCst), 0, "the guard's reference keeps it alive");
    assert_eq!(g.release(), Released::Gone);
    assert_eq!(ran.load(SeqCst), 1);
}

/// The PJSIP scenario from the group-lock wiki: a dialog's group lock is chained with the
/// application's lock at pos -1. One thread enters through the dialog, the other through
/// the application object, and both go through the group, so they take the two locks in the
/// same order and cannot deadlock.
#[test]
fn dialog_and_application_entering_through_the_group_do_not_deadlock() {
    struct App {
        lock: Arc<GenLock>,
        calls: AtomicUsize,
    }
    let app = Arc::new(App {
        lock: Arc::new(GenLock::new()),
        calls: AtomicUsize::new(0),
    });
    let dialog = GrpLock::new();
    dialog.chain_lock(app.lock.clone(), -1).unwrap();
    let done = Arc::new(Barrier::new(3));
    let through_dialog = {
        let (dialog, app, done) = (dialog.clone(), app.clone(), done.clone());
        std::thread::spawn(move || {
            for _ in 0..10_000 {
                let _g = dialog.lock(); // incoming request on the dialog
                assert!(app.lock.is_locked());
                app.calls.store(app.calls.load(Relaxed) + 1, Relaxed);
            }
            done.wait();
        })
    };
    let through_app = {
        let (dialog, app, done) = (dialog.clone(), app.clone(), done.clone());
        std::thread::spawn(move || {
            for _ in 0..10_000 {
                // The application hangs up: it must lock the dialog, which takes the app
                // lock first, never the app lock then the dialog.
                let _g = dialog.lock();
                app.calls.store(app.calls.load(Relaxed) + 1, Relaxed);
            }
            done.wait();
        })
    };
    done.wait();
    through_dialog.join().unwrap();
    through_app.join().unwrap();
    assert_eq!(app.calls.load(Relaxed), 20_000);
}

#[test]
fn shm_locks_set_entries_and_other_groups_can_be_chained() {
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    let shm_lock = Arc::new(region.alloc(GenLock::new()).unwrap());
    let set = Arc::new(region.alloc_lock_set(4).unwrap());
    let outer = GrpLock::new();
    let group = GrpLock::new();
    group.chain_lock(shm_lock.clone(), -3).unwrap();
    group
        .chain_lock(Arc::new(SetEntry::new(set.clone(), 2)), -2)
        .unwrap();
    group.chain_lock(Arc::new(outer.clone()), -1).unwrap();
    let g = group.lock();
    assert!(shm_lock.is_locked());
    assert!(set.get(2).unwrap().is_locked() && !set.get(1).unwrap().is_locked());
    assert!(outer.is_held_by_current_thread());
    drop(g);
    assert!(!shm_lock.is_locked());
    assert!(!set.get(2).unwrap().is_locked());
    assert!(!outer.is_held_by_current_thread());
    let o = outer.clone();
    assert!(std::thread::spawn(move || o.try_lock().is_some())
        .join()
        .unwrap());
}

#[test]
fn a_group_waiting_for_its_chained_lock_is_kept_alive_by_its_reference() {
    let group = GrpLock::new();
    let ext = Arc::new(GenLock::new());
    group.chain_lock(ext.clone(), -1).unwrap();
    let held = ext.lock();
    let g = group.clone();
    let waiter = std::thread::spawn(move || {
        let guard = g.lock_owned();
        guard.release()
    });
    std::thread::sleep(Duration::from_millis(50));
    drop(group); // the waiter's reference keeps the group alive
    drop(held);
    assert_eq!(waiter.join().unwrap(), Released::Gone);
}

#[test]
fn dump_names_the_line_that_leaked_a_reference() {
    let group = GrpLock::new();
    let (leaked, leak_line) = (group.add_ref(), line!());
    let text = group.dump();
    assert!(text.contains("2 reference(s)"), "{text}");
    if cfg!(feature = "grp-debug") {
        let at = format!("{}:{leak_line}:", file!());
        assert!(text.contains(&at), "{text} lacks {at}");
    }
    drop(leaked);
    assert!(group.dump().contains("1 reference(s)"));
}

#[test]
fn force_destroy_while_this_thread_holds_the_group_is_refused_and_changes_nothing() {
    let group = GrpLock::new();
    let ran = counter();
    let r = ran.clone();
    group
        .add_handler(move || {
            r.fetch_add(1, SeqCst);
        })
        .unwrap();
    let guard = group.lock();
    let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| group.force_destroy()));
    assert!(
        refused.is_err(),
        "force_destroy under a held guard must be refused"
    );
    assert_eq!(
        ran.load(SeqCst),
        0,
        "no handler ran while a member could be in use"
    );
    assert!(!group.is_destroyed());
    drop(guard);
    assert!(group.force_destroy(), "and works once the guard is gone");
    assert_eq!(ran.load(SeqCst), 1);
}

#[test]
fn a_panicking_destroy_handler_does_not_skip_the_others() {
    let group = GrpLock::new();
    let ran = Arc::new(Mutex::new(Vec::new()));
    for i in 0..3 {
        let ran = ran.clone();
        group
            .add_handler(move || {
                ran.lock().unwrap().push(i);
                if i == 1 {
                    panic!("handler 1 fails");
                }
            })
            .unwrap();
    }
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(group)));
    assert!(r.is_err(), "the first panic is resumed");
    assert_eq!(
        *ran.lock().unwrap(),
        vec![0, 1, 2],
        "every handler ran, in order"
    );
}

#[test]
fn a_fork_childs_copies_of_a_group_do_not_run_its_destroy_handlers() {
    let _s = common::serial();
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let runs = region
        .alloc_zeroed::<std::sync::atomic::AtomicU64>()
        .unwrap();
    let group = GrpLock::new();
    let seen: &'static std::sync::atomic::AtomicU64 =
        // SAFETY: the region outlives every use below (the group is destroyed before the
        // region is dropped, at the end of this test).
        unsafe { &*(&*runs as *const std::sync::atomic::AtomicU64) };
    group
        .add_handler(move || {
            seen.fetch_add(1, SeqCst);
        })
        .unwrap();
    let child = common::fork(|| {
        // The child's copies of every reference go: the parent's members are not its own.
        drop(std::mem::replace(
            &mut *Box::new(group.clone()),
            GrpLock::new(),
        ));
        0
    });
    assert_eq!(child.join(), 0);
    let child = common::fork(|| i32::from(group.force_destroy()));
    assert_eq!(child.join(), 1, "force_destroy in the child ends its copy");
    assert_eq!(runs.load(SeqCst), 0, "no handler ran in a child");
    drop(group);
    assert_eq!(
        runs.load(SeqCst),
        1,
        "the creator's last reference runs it once"
    );
}

#[test]
fn chaining_two_groups_to_each_other_is_a_cycle_error() {
    let a = GrpLock::new();
    let b = GrpLock::new();
    let c = GrpLock::new();
    b.chain_lock(Arc::new(a.clone()), 1).unwrap();
    assert_eq!(a.chain_lock(Arc::new(b.clone()), 1), Err(ChainError::Cycle));
    // Through a third group too.
    c.chain_lock(Arc::new(b.clone()), 1).unwrap();
    assert_eq!(a.chain_lock(Arc::new(c.clone()), 1), Err(ChainError::Cycle));
    // Nothing changed: every group still locks and releases.
    drop(a.lock());
    drop(b.lock());
    drop(c.lock());
}

#[test]
fn a_destroyed_group_in_a_chain_does_not_brick_the_group_that_chains_it() {
    let parent = GrpLock::new();
    let child = GrpLock::new();
    let l = Arc::new(GenLock::new());
    parent.chain_lock(l.clone(), -1).unwrap();
    let child_link: Arc<dyn ChainLock> = Arc::new(child.clone());
    parent.chain_lock(child_link.clone(), 1).unwrap();
    assert!(child.force_destroy());
    let g = parent.lock();
    assert!(l.is_locked(), "the live chained lock is taken");
    drop(g);
    assert!(!l.is_locked(), "and released");
    assert!(parent.try_lock().is_some());
    assert!(
        parent.unchain_lock(&child_link),
        "and the dead group can be unchained"
    );
}

/// A chained lock whose acquisition panics while armed.
struct Tripwire(std::sync::atomic::AtomicBool);

// SAFETY: it holds nothing; acquire and release do nothing but (maybe) panic.
unsafe impl ChainLock for Tripwire {
    fn chain_acquire(&self) {
        assert!(!self.0.load(SeqCst), "tripwire");
    }
    fn chain_try_acquire(&self) -> bool {
        assert!(!self.0.load(SeqCst), "tripwire");
        true
    }
    unsafe fn chain_release(&self) {}
}

#[test]
fn a_panic_taking_a_chained_lock_releases_every_lock_taken_before_it() {
    let group = GrpLock::new();
    let first = Arc::new(GenLock::new());
    let wire = Arc::new(Tripwire(std::sync::atomic::AtomicBool::new(true)));
    group.chain_lock(first.clone(), -2).unwrap();
    group.chain_lock(wire.clone(), 3).unwrap();
    // first and the group's own lock are taken, then the tripwire panics.
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(group.lock())));
    assert!(r.is_err());
    assert!(
        !first.is_locked(),
        "the lock taken before the panic was released"
    );
    assert!(!group.is_held_by_current_thread());
    wire.0.store(false, SeqCst);
    // Another thread can take the group: its own lock was released too.
    std::thread::scope(|s| {
        s.spawn(|| drop(group.lock())).join().unwrap();
    });
    let g = group.lock();
    assert!(first.is_locked());
    drop(g);
    assert!(!first.is_locked());
}

#[test]
fn chaining_a_busy_lock_while_holding_the_group_never_waits_for_it() {
    // Thread T holds L and waits for the group; this thread holds the group and chains L.
    // Waiting for L here would deadlock both (the old behaviour for a lock chained after
    // every held one), so the scenario runs in a child with a deadline.
    let _s = common::serial();
    let child = common::fork(|| {
        let group = GrpLock::new();
        let l = Arc::new(GenLock::new());
        let g = group.lock();
        let (tx, rx) = std::sync::mpsc::channel();
        let t = {
            let (group, l) = (group.clone(), l.clone());
            std::thread::spawn(move || {
                let _held = l.lock();
                tx.send(()).unwrap();
                drop(group.lock()); // waits for the group
            })
        };
        rx.recv().unwrap();
        let r = group.chain_lock(l.clone(), 5);
        drop(g);
        t.join().unwrap();
        i32::from(r != Err(ChainError::WouldBreakOrder))
    });
    assert_eq!(
        child.join_within(Duration::from_secs(10), String::new),
        0,
        "refused instead of waiting"
    );
}

#[test]
fn try_lock_for_gives_up_near_its_deadline_and_succeeds_once_the_group_is_free() {
    let group = GrpLock::new();
    let chained = Arc::new(GenLock::new());
    group.chain_lock(chained.clone(), 1).unwrap();
    let held = chained.lock(); // keeps the group's chain busy
    let t0 = std::time::Instant::now();
    let got = std::thread::scope(|s| {
        s.spawn(|| group.try_lock_for(Duration::from_millis(80)).is_some())
            .join()
            .unwrap()
    });
    let waited = t0.elapsed();
    assert!(!got);
    assert!(waited >= Duration::from_millis(80), "{waited:?}");
    assert!(waited < Duration::from_secs(2), "{waited:?}");
    drop(held);
    let g = group
        .try_lock_for(Duration::from_secs(5))
        .expect("free now");
    assert!(chained.is_locked());
    drop(g);
}

#[test]
fn a_recursive_lock_and_the_write_side_of_a_reader_writer_lock_chain_to_a_group() {
    let group = GrpLock::new();
    let app = Arc::new(lockkit::RecLock::new());
    let table = Arc::new(lockkit::RwLock::new(0u64));
    group.chain_lock(app.clone(), -1).unwrap();
    group.chain_lock(table.clone(), 1).unwrap();
    {
        let _g = group.lock();
        assert_eq!(app.depth(), 1, "the group holds the application lock");
        let again = app.lock(); // recursive: the same thread may take it again
        assert_eq!(app.depth(), 2);
        drop(again);
        assert!(table.readers().is_none(), "and the table's write lock");
        assert!(std::thread::scope(|s| s
            .spawn(|| table.try_read().is_none())
            .join()
            .unwrap()));
    }
    assert!(!app.is_locked());
    assert_eq!(table.readers(), Some(0));
}
