//! The group lock: references and destroy, handlers, recursion, chained locks and replace,
//! including the cases where PJLIB is known to break.

use std::sync::atomic::{AtomicUsize, Ordering::*};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use lockkit::grp::{
    ChainError, ChainLock, Destroyed, FieldLock, ForceDestroyError, GrpLock, Released,
    ReplaceError, SetEntry,
};
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
fn chaining_a_busy_lock_while_holding_is_refused_rather_than_waited_for() {
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
    for pos in [-1, 1] {
        assert_eq!(group.chain_lock(early.clone(), pos), Err(ChainError::Busy));
    }
    assert_eq!(group.chain_order(), vec![0], "nothing changed");
    elsewhere.1.send(()).unwrap();
    elsewhere.0.join().unwrap();
    // Free now: it is chained and taken at once, whatever its pos.
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
        // The lockers went through the group at least once (on a busy machine they may
        // not have run yet); the deadline only catches a hang.
        let t0 = std::time::Instant::now();
        while n.load(Relaxed) == 0 {
            assert!(
                t0.elapsed() < std::time::Duration::from_secs(60),
                "no locker got the group in 60 s"
            );
            std::thread::yield_now();
        }
        stop.store(true, Relaxed);
    });
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
fn replace_moves_the_handlers_and_makes_the_old_handles_stand_for_the_new_group() {
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
    assert!(!old.is_destroyed() && !old_ref.is_destroyed());
    assert_eq!(old.chain_order(), vec![0], "the old chain was unchained");
    {
        let _g = old.lock();
        assert!(
            new.is_held_by_current_thread(),
            "old's handle takes the new group"
        );
        assert!(!ext.is_locked());
    }
    push(&old, "late");
    assert_eq!(
        new.handler_count(),
        4,
        "a handler added through old goes to new"
    );
    assert!(old.downgrade().upgrade().is_some());
    drop(old);
    drop(old_ref);
    assert!(order.lock().unwrap().is_empty(), "old's death runs nothing");
    assert_eq!(new.dec_ref(), Released::Gone);
    assert_eq!(
        *order.lock().unwrap(),
        vec!["new-1", "old-1", "old-2", "late"]
    );
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
    // `old` stands for `new` now.
    assert_eq!(GrpLock::replace(&old, &new), Err(ReplaceError::SameGroup));
    assert_eq!(GrpLock::replace(&new, &old), Err(ReplaceError::SameGroup));
    // A chain that would make the new group chain itself is refused.
    let third = GrpLock::new();
    third.chain_lock(Arc::new(new.clone()), 1).unwrap();
    assert_eq!(GrpLock::replace(&new, &third), Err(ReplaceError::Cycle));
    // A destroyed group cannot be replaced, nor replace.
    let dead = GrpLock::new();
    dead.force_destroy().unwrap();
    assert_eq!(
        GrpLock::replace(&dead, &new),
        Err(ReplaceError::OldGroupGone)
    );
    assert_eq!(
        GrpLock::replace(&third, &dead),
        Err(ReplaceError::NewGroupGone)
    );
}

#[test]
#[should_panic(expected = "use lock_alive where that can happen")]
fn locking_a_force_destroyed_group_panics_with_a_clear_message() {
    let group = GrpLock::new();
    let other = group.clone();
    other.force_destroy().unwrap();
    let _g = group.lock();
}

#[test]
fn lock_alive_tells_a_force_destroyed_group_with_an_error() {
    let group = GrpLock::new();
    assert!(group.lock_alive().is_ok());
    group.clone().force_destroy().unwrap();
    assert_eq!(group.lock_alive().err(), Some(Destroyed));
    assert_eq!(
        group.force_destroy(),
        Err(ForceDestroyError::AlreadyDestroyed)
    );
}

#[test]
fn force_destroy_runs_the_handlers_once_and_unchains_the_chained_locks() {
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
    assert_eq!(group.force_destroy(), Err(ForceDestroyError::HeldByCaller));
    assert_eq!(ran.load(SeqCst), 0);
    // Another thread waits until the holder lets go, then destroys.
    let destroyer = std::thread::spawn(move || other.force_destroy());
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(ran.load(SeqCst), 0, "destroyed while held");
    drop(g);
    destroyer.join().unwrap().unwrap();
    assert_eq!(ran.load(SeqCst), 1);
    assert!(!ext.is_locked());
    assert_eq!(group.chain_order(), vec![0], "the chain was dropped");
    assert_eq!(
        group.force_destroy(),
        Err(ForceDestroyError::AlreadyDestroyed)
    );
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

/// A table whose stripes are a field, as a `#[shared_locked]` struct has them.
#[derive(lockkit::ShmSafe)]
#[repr(C)]
struct StripedTable {
    stripes: lockkit::GenLockSet<4>,
    /// Incremented with a load and a store (not an atomic add), so only mutual exclusion
    /// keeps every increment.
    counts: [std::sync::atomic::AtomicU64; 4],
}

#[test]
fn groups_chaining_a_stripe_of_a_shared_struct_exclude_each_other() {
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    let table = Arc::new(region.alloc_zeroed::<StripedTable>().unwrap());
    // Four groups, each chaining stripe 1 through a FieldLock of its own: whoever holds a
    // group holds that stripe, so the plain increments below never collide.
    let groups: Vec<GrpLock> = (0..4)
        .map(|_| {
            let g = GrpLock::new();
            let stripe = FieldLock::new(Arc::clone(&table), |t| t.stripes.at(1));
            g.chain_lock(Arc::new(stripe), -1).unwrap();
            g
        })
        .collect();
    std::thread::scope(|s| {
        for g in &groups {
            let table = &table;
            s.spawn(move || {
                for _ in 0..20_000 {
                    let _held = g.lock();
                    let c = &table.counts[1];
                    c.store(c.load(Relaxed) + 1, Relaxed);
                }
            });
        }
    });
    assert_eq!(table.counts[1].load(Relaxed), 80_000);
    assert!(table.stripes.iter().all(|l| !l.is_locked()));
    drop(groups);
    // The FieldLocks let go of the table with their groups.
    assert_eq!(Arc::strong_count(&table), 1);
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
fn try_lock_for_gives_up_at_the_deadline_and_takes_the_group_once_free() {
    let group = GrpLock::new();
    let ext = Arc::new(GenLock::new());
    group.chain_lock(ext.clone(), 1).unwrap();
    assert!(
        group.try_lock_for(Duration::ZERO).is_some(),
        "free: taken at once"
    );
    // The own lock busy: another thread holds the group.
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let holder = {
        let group = group.clone();
        std::thread::spawn(move || {
            let _g = group.lock();
            held_tx.send(()).unwrap();
            go_rx.recv().unwrap();
        })
    };
    held_rx.recv().unwrap();
    let t = std::time::Instant::now();
    assert!(group.try_lock_for(Duration::from_millis(50)).is_none());
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(40) && waited < Duration::from_secs(5),
        "waited {waited:?} for a 50 ms timeout"
    );
    go_tx.send(()).unwrap();
    holder.join().unwrap();
    // A chained lock busy: given back (with the own lock) at the deadline.
    let busy = ext.lock();
    assert!(group.try_lock_for(Duration::from_millis(30)).is_none());
    let other = group.clone();
    let ext2 = ext.clone();
    let taker = std::thread::spawn(move || {
        let g = other.try_lock_for(Duration::from_secs(10));
        let got = g.is_some() && ext2.owner().map(|o| o.tid) == Some(unsafe_gettid());
        drop(g);
        got
    });
    std::thread::sleep(Duration::from_millis(30));
    drop(busy);
    assert!(taker.join().unwrap(), "the group was not taken once free");
    assert!(!ext.is_locked());
}

fn unsafe_gettid() -> u32 {
    // SAFETY: gettid takes no arguments and cannot fail.
    unsafe { libc::gettid() as u32 }
}

#[test]
fn a_recursive_lock_can_be_chained_and_its_holder_takes_the_group_through_it() {
    use lockkit::RecLock;
    // PJSUA's application lock: recursive, chained before the dialog's group.
    let app = Arc::new(RecLock::new());
    let dialog = GrpLock::new();
    dialog.chain_lock(app.clone(), -1).unwrap();
    {
        let _a = app.lock(); // the application holds its lock, then enters the dialog
        let g = dialog.lock();
        assert_eq!(app.depth(), 2);
        drop(g);
        assert_eq!(app.depth(), 1);
    }
    assert!(!app.is_locked());
    // While another thread holds the application lock, the dialog cannot be taken.
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let a = app.clone();
    let t = std::thread::spawn(move || {
        let _a = a.lock();
        held_tx.send(()).unwrap();
        go_rx.recv().unwrap();
    });
    held_rx.recv().unwrap();
    assert!(dialog.try_lock().is_none());
    assert!(dialog.try_lock_for(Duration::from_millis(20)).is_none());
    go_tx.send(()).unwrap();
    t.join().unwrap();
    let g = dialog.lock();
    assert_eq!(app.depth(), 1);
    drop(g);
    assert!(!app.is_locked());
}

#[test]
fn the_write_side_of_an_rwlock_can_be_chained() {
    use lockkit::RwLock;
    let routes = Arc::new(RwLock::new(0u32));
    let group = GrpLock::new();
    let side: Arc<dyn ChainLock> = routes.clone();
    group.chain_lock(side.clone(), 1).unwrap();
    assert_eq!(
        group.chain_lock(routes.clone(), 2),
        Err(ChainError::AlreadyChained),
        "two handles of one RwLock are the same lock"
    );
    {
        let _g = group.lock();
        assert!(routes.try_read().is_none() && routes.try_write().is_none());
    }
    assert!(routes.try_read().is_some());
    {
        let _r = routes.read();
        assert!(group.try_lock().is_none(), "a reader keeps the writer out");
        assert!(group.try_lock_for(Duration::from_millis(20)).is_none());
    }
    let g = group.lock();
    assert!(group.unchain_lock(&side));
    assert!(
        routes.try_write().is_some(),
        "unchained by the holder: released at once"
    );
    drop(g);
}

/// With `grp-debug`, a region's report lists this process's live groups and where each
/// reference was taken, so a leak is found among all groups at once (issue 13.5).
#[cfg(feature = "grp-debug")]
#[test]
fn the_report_lists_every_live_group_with_where_each_reference_was_taken() {
    let region = lockkit::ShmRegion::anonymous(1 << 16).unwrap();
    let group = GrpLock::new();
    let made = line!() - 1;
    let leaked = group.clone();
    let cloned = line!() - 1;
    let other = GrpLock::new();
    let other_line = line!() - 1;
    let held = std::thread::spawn({
        let g = other.clone();
        move || g.lock_owned().release()
    });
    assert_eq!(held.join().unwrap(), lockkit::grp::Released::Alive);
    let report = region.report();
    let at = |line: u32| format!("tests/grp_lock.rs:{line}:");
    let ours = report
        .groups
        .iter()
        .find(|g| g.references.iter().any(|r| r.starts_with(&at(made))))
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(ours.references.len(), 2, "{report}");
    assert!(
        ours.references.iter().any(|r| r.starts_with(&at(cloned))),
        "{report}"
    );
    assert!(
        report
            .groups
            .iter()
            .any(|g| g.references.iter().any(|r| r.starts_with(&at(other_line)))),
        "{report}"
    );
    let text = report.to_string();
    assert!(text.contains("group locks of this process"), "{text}");
    assert!(
        report.to_json().contains("\"groups\":[{"),
        "{}",
        report.to_json()
    );
    // Gone groups are not listed.
    drop((group, leaked));
    let after = region.report();
    assert!(
        !after
            .groups
            .iter()
            .any(|g| g.references.iter().any(|r| r.starts_with(&at(made)))),
        "{after}"
    );
    drop(other);
}

/// Issue 22.12: the reference a `replace` makes (the old group's handle of the new one) is
/// reported at the caller's line, not inside lockkit.
#[cfg(feature = "grp-debug")]
#[test]
fn dump_names_the_callers_line_for_the_reference_a_replace_makes() {
    let (old, new) = (GrpLock::new(), GrpLock::new());
    let (replaced, line) = (GrpLock::replace(&old, &new), line!());
    replaced.unwrap();
    let text = new.dump();
    let at = format!("{}:{line}:", file!());
    assert!(text.contains(&at), "{text} lacks {at}");
    assert!(!text.contains("grp/inner.rs"), "{text}");
}

/// Issue 22.12: clones that `vec![g; n]` makes inside the standard library are reported
/// at the caller's line (found in a backtrace: this test build has debug info).
#[cfg(feature = "grp-debug")]
#[test]
fn dump_names_the_callers_line_for_clones_made_inside_vec() {
    let group = GrpLock::new();
    let (copies, line) = (vec![group.clone(); 3], line!());
    let text = group.dump();
    let at = format!("{}:{line}:", file!());
    assert_eq!(
        text.matches(&at).count(),
        3,
        "{text} lacks {at} three times"
    );
    drop(copies);
}
