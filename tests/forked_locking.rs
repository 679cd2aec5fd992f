//! Locks shared by forked processes: mutual exclusion with exact totals, try_lock and
//! timeouts seen from another process, and handles that children drop without harm.

mod common;

use std::sync::atomic::{AtomicU64, Ordering::*};
use std::time::{Duration, Instant};

use common::{fork, holder, run_children, serial, wait_for, Handshake};
use lockkit::{GenLockSet, ShmMutex, ShmRegion};

const WORKERS: usize = 4;
const ROUNDS: u64 = 200_000;

#[test]
fn a_childs_write_to_an_anonymous_region_is_seen_by_the_parent() {
    let _s = serial();
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let cell = region.alloc(AtomicU64::new(0)).unwrap();
    run_children(1, |_| {
        cell.store(0xfeed, Relaxed);
        0
    });
    assert_eq!(cell.load(Relaxed), 0xfeed);
}

#[test]
fn four_processes_count_exactly_under_one_lock() {
    let _s = serial();
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    let counter = region.alloc(ShmMutex::new(0u64)).unwrap();
    run_children(WORKERS, |_| {
        for _ in 0..ROUNDS {
            *counter.lock() += 1;
        }
        0
    });
    assert_eq!(*counter.lock(), WORKERS as u64 * ROUNDS);
    assert!(!counter.is_locked());
}

#[test]
fn four_processes_count_exactly_through_a_striped_lock_set() {
    let _s = serial();
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    let set = region.alloc_lock_set(8).unwrap();
    // Plain load-then-store under the stripe's lock: a read-modify-write that only mutual
    // exclusion keeps exact, so a broken lock shows up as a lost update.
    let counters = region.alloc_zeroed::<[AtomicU64; 8]>().unwrap();
    run_children(WORKERS, |w| {
        for k in 0..ROUNDS {
            let key = k.wrapping_mul(2654435761).wrapping_add(w as u64);
            let i = set.index_for(&key);
            let _g = set.lock(i);
            counters[i].store(counters[i].load(Relaxed) + 1, Relaxed);
        }
        0
    });
    let total: u64 = counters.iter().map(|c| c.load(Relaxed)).sum();
    assert_eq!(total, WORKERS as u64 * ROUNDS);
    assert!(
        counters.iter().all(|c| c.load(Relaxed) > 0),
        "keys reached every stripe"
    );
}

#[test]
fn an_inline_lock_set_excludes_across_processes_too() {
    let _s = serial();
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    let table = region
        .alloc_zeroed::<(GenLockSet<4>, [AtomicU64; 4])>()
        .unwrap();
    run_children(WORKERS, |w| {
        for k in 0..ROUNDS / 4 {
            let i = ((k as usize) + w) % 4;
            let _g = table.0.lock(i);
            table.1[i].store(table.1[i].load(Relaxed) + 1, Relaxed);
        }
        0
    });
    let total: u64 = table.1.iter().map(|c| c.load(Relaxed)).sum();
    assert_eq!(total, WORKERS as u64 * ROUNDS / 4);
}

#[test]
fn try_lock_fails_while_another_process_holds_it_and_succeeds_after() {
    let _s = serial();
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let hs = region.alloc_zeroed::<Handshake>().unwrap();
    let child = holder(&hs);
    wait_for(&hs.1, 1);
    assert!(hs.0.try_lock().is_none());
    let owner = hs.0.owner().expect("held by the child");
    assert_eq!(owner.pid, child.pid());
    hs.1.store(2, Release);
    wait_for(&hs.1, 3);
    assert!(hs.0.try_lock().is_some());
    assert_eq!(child.join(), 0);
}

#[test]
fn a_waiter_in_try_lock_for_gets_the_lock_when_it_is_released_in_time() {
    let _s = serial();
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let hs = region.alloc_zeroed::<Handshake>().unwrap();
    let child = fork(|| {
        let g = hs.0.lock();
        hs.1.store(1, Release);
        std::thread::sleep(Duration::from_millis(50));
        drop(g);
        0
    });
    wait_for(&hs.1, 1);
    let t0 = Instant::now();
    assert!(hs.0.try_lock_for(Duration::from_secs(10)).is_some());
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(child.join(), 0);
}

#[test]
fn a_child_that_drops_its_copies_of_handles_frees_nothing_of_the_parents() {
    let _s = serial();
    let name = common::unique_name("drop");
    let region = ShmRegion::create(&name, 1 << 16).unwrap();
    let obj = region.alloc(ShmMutex::new(7u64)).unwrap();
    let before = region.stats().unwrap();
    let set = region.alloc_lock_set(4).unwrap();
    run_children(1, |_| {
        *obj.lock() += 1;
        // SAFETY: these are the child's own copies of the handles, as fork made them; the
        // parent's copies live in the parent's memory.
        let copies = unsafe {
            (
                std::ptr::read(&region),
                std::ptr::read(&obj),
                std::ptr::read(&set),
            )
        };
        drop(copies);
        0
    });
    assert_eq!(*obj.lock(), 8, "the object is intact");
    assert_eq!(
        region.stats().unwrap().heap.allocations,
        before.heap.allocations + 1
    );
    assert!(
        common::shm_path(&name).exists(),
        "the child did not unlink the name"
    );
    // A freshly allocated object does not land on top of the parent's.
    let other = region.alloc(ShmMutex::new(0u64)).unwrap();
    assert_ne!(other.ptr().offset(), obj.ptr().offset());
    drop(region);
    drop(other);
    drop(obj);
    drop(set);
    assert!(
        !common::shm_path(&name).exists(),
        "the creator unlinks on its last drop"
    );
}

#[test]
fn an_object_freed_in_a_child_cannot_be_freed_again_through_the_parents_copy() {
    let _s = serial();
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let obj = region.alloc(1u64).unwrap();
    let ptr = obj.ptr();
    let child = fork(|| {
        // SAFETY: this is the child's own copy of the handle, as fork made it; the parent's
        // copy lives in the parent's memory and this process exits right after.
        let mine = unsafe { std::ptr::read(&obj) };
        // SAFETY: nobody uses the object afterwards except to test the refused second free.
        match unsafe { region.free(mine) } {
            Ok(()) => 0,
            Err(_) => 1,
        }
    });
    assert_eq!(child.join(), 0);
    assert!(
        region.get(ptr).is_err(),
        "the parent sees the object as freed"
    );
    let reuse = region.alloc(5u64).unwrap();
    assert_eq!(reuse.ptr(), ptr, "the block was handed out again");
    // SAFETY: the free must be refused, so nothing is freed.
    let second = unsafe { region.free(obj) };
    assert!(
        matches!(second, Err(lockkit::Error::StaleHandle)),
        "{second:?}"
    );
    assert_eq!(
        *reuse, 5,
        "the new object was not freed by the stale handle"
    );
}

#[test]
fn processes_allocating_at_once_never_share_a_block() {
    let _s = serial();
    let region = ShmRegion::anonymous(4 << 20).unwrap();
    let whole = region.stats().unwrap().heap;
    run_children(WORKERS, |w| {
        let mut live = Vec::new();
        for i in 0..3_000u64 {
            let stamp = ((w as u64) << 32) | i;
            if live.len() > 40 {
                let (b, s): (lockkit::ShmBox<[AtomicU64; 20]>, u64) = live.swap_remove(0);
                if b.iter().any(|x| x.load(Relaxed) != s) {
                    return 1; // another process's allocation overlapped this one
                }
                // SAFETY: only this process ever knew of the object.
                if unsafe { region.free(b) }.is_err() {
                    return 2;
                }
            }
            let b = region.alloc_zeroed::<[AtomicU64; 20]>().unwrap();
            b.iter().for_each(|x| x.store(stamp, Relaxed));
            live.push((b, stamp));
        }
        for (b, _) in live {
            // SAFETY: as above.
            unsafe { region.free(b) }.unwrap();
        }
        0
    });
    assert_eq!(region.stats().unwrap().heap, whole);
}

#[test]
fn a_child_forked_while_another_thread_maps_regions_can_map_its_own() {
    let _s = serial();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mapper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                drop(ShmRegion::anonymous(1 << 16).unwrap());
            }
        })
    };
    for _ in 0..200 {
        let child = common::fork(|| {
            let r = ShmRegion::anonymous(1 << 16).unwrap();
            drop(r);
            0
        });
        assert_eq!(
            child.join_within(std::time::Duration::from_secs(10), String::new),
            0
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    mapper.join().unwrap();
}
