//! The lock-order checker (issue 13.4, feature `lock-debug`): an AB/BA inversion is
//! reported with both call sites before the threads deadlock, in one process and across
//! two, with group locks and their chains, and never for orders that cannot deadlock
//! (`try_lock`, `locked!`'s own global order, a group's chained locks, freed locks).
//!
//! `cargo test --test lock_order --features lock-debug`. Every test runs in a forked child:
//! what to do on an inversion is set for a whole process.
#![cfg(feature = "lock-debug")]

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, Ordering::*};
use std::sync::Arc;

use lockkit::grp::{ChainLock, GrpLock};
use lockkit::lock_order::{inversions, set_on_inversion, OnInversion};
use lockkit::{locked, shared_locked, GenLock, ShmRegion};

#[shared_locked]
struct Pair {
    a: GenLock,
    #[guarded_by(a)]
    x: u64,
    b: GenLock,
    #[guarded_by(b)]
    y: u64,
    /// The first child's pid and lines, for the second.
    step: AtomicU32,
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// `tests/lock_order.rs:LINE:`, as a site in a message.
fn at(line: u32) -> String {
    format!("tests/lock_order.rs:{line}:")
}

/// Runs `work` in a forked child and asserts it passed.
fn in_child(work: impl FnOnce()) {
    let code = common::fork(|| {
        work();
        0
    })
    .join();
    assert_eq!(code, 0, "the child failed (its message is above)");
}

fn pair_region() -> (ShmRegion, lockkit::ShmBox<Pair>) {
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    let pair = region.alloc_zeroed::<Pair>().unwrap();
    region.publish("pair", &pair).unwrap();
    (region, pair)
}

#[test]
fn taking_two_locks_the_other_way_round_panics_before_waiting_naming_all_four_sites() {
    in_child(|| {
        set_on_inversion(OnInversion::Panic);
        let (region, p) = pair_region();
        let (la1, lb1);
        {
            let _a = p.lock_a();
            la1 = line!() - 1;
            let _b = p.lock_b();
            lb1 = line!() - 1;
        }
        let _b = p.lock_b();
        let lb2 = line!() - 1;
        let mut la2 = 0;
        let r = catch_unwind(AssertUnwindSafe(|| {
            la2 = line!() + 1;
            let _a = p.lock_a();
        }));
        let msg = panic_text(r.expect_err("the inversion was not reported"));
        for want in ["pair.a", "pair.b", &at(la1), &at(lb1), &at(lb2), &at(la2)] {
            assert!(msg.contains(want), "{want} missing from: {msg}");
        }
        // It panicked before waiting: only `b` (this thread's) is held, nothing hangs.
        let report = region.report();
        let held: Vec<String> = report.locks.iter().map(|l| l.place()).collect();
        assert_eq!(held, ["pair.b"], "{report}");
        // The region's report shows both orders with their sites.
        assert_eq!(report.inversions.len(), 2, "{report}");
        let text = report.to_string();
        assert!(text.contains("lock-order inversions"), "{text}");
        assert!(text.contains(&at(la1)) && text.contains(&at(lb2)), "{text}");
        assert!(
            report.to_json().contains("\"inversions\":[{"),
            "{}",
            report.to_json()
        );
    });
}

#[test]
fn an_inversion_across_two_processes_is_reported_with_the_sites_of_both() {
    let (region, p) = pair_region();
    // The first process takes a, then b, and exits.
    let first = common::fork(|| {
        let _a = p.lock_a();
        let _b = p.lock_b();
        p.step.store(line!() - 1, Release);
        0
    });
    let first_pid = first.pid();
    assert_eq!(first.join(), 0);
    let first_line = p.step.load(Acquire);
    // The second takes b, then a: told before it waits, with the first one's pid and site.
    in_child(|| {
        set_on_inversion(OnInversion::Panic);
        let _b = p.lock_b();
        let r = catch_unwind(AssertUnwindSafe(|| drop(p.lock_a())));
        let msg = panic_text(r.expect_err("the inversion was not reported"));
        assert!(msg.contains(&format!("pid {first_pid} ")), "{msg}");
        assert!(msg.contains(&at(first_line)), "{msg}");
    });
    let report = region.report();
    let pids: Vec<u32> = report.inversions.iter().map(|i| i.pid).collect();
    assert!(pids.contains(&first_pid), "{report}");
    assert_eq!(report.inversions.len(), 2, "{report}");
    assert!(report.to_string().contains(&at(first_line)), "{report}");
}

#[test]
fn try_lock_in_the_other_order_is_never_an_inversion_but_waiting_is() {
    in_child(|| {
        set_on_inversion(OnInversion::Panic);
        let (_region, p) = pair_region();
        drop((p.lock_a(), p.lock_b()));
        {
            let _b = p.lock_b();
            assert!(p.try_lock_a().is_some());
            assert!(p
                .try_lock_a_for(std::time::Duration::from_millis(1))
                .is_some());
        }
        assert!(inversions().is_empty(), "{:?}", inversions());
        let _b = p.lock_b();
        assert!(catch_unwind(AssertUnwindSafe(|| drop(p.lock_a()))).is_err());
        assert_eq!(inversions().len(), 1);
    });
}

#[test]
fn log_mode_goes_on_and_records_the_inversion() {
    in_child(|| {
        set_on_inversion(OnInversion::Log);
        let (_region, p) = pair_region();
        drop((p.lock_a(), p.lock_b()));
        for _ in 0..3 {
            let _b = p.lock_b();
            let _a = p.lock_a();
        }
        let found = inversions();
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(
            found[0].to_string().contains("lock order inversion"),
            "{}",
            found[0]
        );
    });
}

#[test]
fn locked_over_several_locks_takes_them_in_one_order_whatever_the_order_written() {
    in_child(|| {
        set_on_inversion(OnInversion::Panic);
        let region = ShmRegion::anonymous(1 << 20).unwrap();
        let a = region.alloc(GenLock::new()).unwrap();
        let b = region.alloc(GenLock::new()).unwrap();
        for _ in 0..3 {
            locked!(a, b => {});
            locked!(b, a => {});
        }
        assert!(inversions().is_empty(), "{:?}", inversions());
        // The checker does see them: the order locked! uses, reversed by hand, is reported.
        let (first, second) = if a.ptr().offset() < b.ptr().offset() {
            (&b, &a)
        } else {
            (&a, &b)
        };
        let _g = first.lock();
        assert!(catch_unwind(AssertUnwindSafe(|| drop(second.lock()))).is_err());
    });
}

#[test]
fn a_group_counts_as_one_lock_and_its_chained_locks_are_never_taken_out_of_order() {
    in_child(|| {
        set_on_inversion(OnInversion::Panic);
        let region = ShmRegion::anonymous(1 << 20).unwrap();
        let shared: Arc<dyn ChainLock> = Arc::new(region.alloc(GenLock::new()).unwrap());
        let first: Arc<dyn ChainLock> = Arc::new(region.alloc(GenLock::new()).unwrap());
        let other = region.alloc(GenLock::new()).unwrap();
        let group = GrpLock::new();
        group.chain_lock(first, -1).unwrap();
        group.chain_lock(shared.clone(), 1).unwrap();
        // Consistent use: `other` before the group, the group alone, a try inside it.
        for _ in 0..3 {
            {
                let _o = other.lock();
                let _g = group.lock();
            }
            drop(group.lock());
            let _g = group.lock();
            assert!(other.try_lock().is_none() || inversions().is_empty());
        }
        assert!(inversions().is_empty(), "{:?}", inversions());
        // The group before `other`: the other way round, reported at the group's site.
        let _g = group.lock();
        let line = line!() + 1;
        let r = catch_unwind(AssertUnwindSafe(|| drop(other.lock())));
        let msg = panic_text(r.expect_err("group then lock was not reported"));
        assert!(msg.contains("group lock"), "{msg}");
        assert!(msg.contains(&at(line)), "{msg}");
    });
}

#[test]
fn the_edges_of_a_freed_object_are_forgotten() {
    in_child(|| {
        set_on_inversion(OnInversion::Panic);
        let region = ShmRegion::anonymous(1 << 20).unwrap();
        let a = region.alloc(GenLock::new()).unwrap();
        let b = region.alloc(GenLock::new()).unwrap();
        let offsets = (a.ptr().offset(), b.ptr().offset());
        drop((a.lock(), b.lock()));
        // SAFETY: nothing uses the locks afterwards.
        unsafe {
            region.free(b).unwrap();
            region.free(a).unwrap();
        }
        let a2 = region.alloc(GenLock::new()).unwrap();
        let b2 = region.alloc(GenLock::new()).unwrap();
        assert_eq!((a2.ptr().offset(), b2.ptr().offset()), offsets);
        let _b = b2.lock();
        let _a = a2.lock();
        assert!(inversions().is_empty(), "{:?}", inversions());
    });
}

#[test]
fn a_dropped_group_forgets_its_edges_so_a_new_group_in_its_memory_starts_clean() {
    in_child(|| {
        set_on_inversion(OnInversion::Panic);
        static W: GenLock = GenLock::new();
        {
            // The group, then W: an edge group -> W.
            let g = GrpLock::new();
            let _g = g.lock();
            let _w = W.lock();
        }
        // New groups, W first: had the dead group's edge stayed, the one made in its memory
        // would be reported as an inversion.
        for _ in 0..100 {
            let g = GrpLock::new();
            let _w = W.lock();
            let r = catch_unwind(AssertUnwindSafe(|| drop(g.lock())));
            assert!(r.is_ok(), "a new group inherited a dead group's order");
        }
        assert!(inversions().is_empty(), "{:?}", inversions());
    });
}

#[test]
fn describing_a_leaked_guards_lock_never_reads_a_region_another_thread_unmapped() {
    in_child(|| {
        use std::sync::atomic::AtomicBool;
        use std::time::{Duration, Instant};
        set_on_inversion(OnInversion::Ignore);
        static T: GenLock = GenLock::new();
        let name = format!("/lockkit-test-unmapped-{}", std::process::id());
        let (tx, rx) = std::sync::mpsc::channel::<ShmRegion>();
        let stop = Arc::new(AtomicBool::new(false));
        // Maps and unmaps the region over and over, holding its only handle.
        let remapper = {
            let (stop, name) = (Arc::clone(&stop), name.clone());
            std::thread::spawn(move || {
                let mut r = rx.recv_timeout(Duration::from_secs(10)).unwrap();
                while !stop.load(Relaxed) {
                    drop(r);
                    r = ShmRegion::open(&name).unwrap();
                }
            })
        };
        let r = ShmRegion::create(&name, 1 << 20).unwrap();
        r.keep_name();
        let l = r.alloc(GenLock::new()).unwrap();
        // Objects enough that describing `l` walks the heap for a while.
        let filler: Vec<_> = (0..3000)
            .filter_map(|_| r.alloc(GenLock::new()).ok())
            .collect();
        drop(filler);
        {
            // The edge T -> l.
            let _t = T.lock();
            let _l = l.lock();
        }
        // l stays held by this thread with no handle to its region: each wait for T below
        // finds the reverse of the edge and describes l, while the other thread unmaps it.
        std::mem::forget(l.lock());
        drop(l);
        tx.send(r).unwrap();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            drop(T.lock());
        }
        stop.store(true, Relaxed);
        remapper.join().unwrap();
        let _ = ShmRegion::unlink(&name);
    });
}
