//! The allocator inside a region: out of space, churn without fragmentation, validated
//! pointers, named roots, and damage that is reported instead of followed.

mod common;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use common::Rng;
use lockkit::{Error, GenLock, GenLockSet, ShmBox, ShmMutex, ShmPtr, ShmRegion};

fn heap_start(r: &ShmRegion) -> u64 {
    let s = r.stats().unwrap();
    s.heap_start as u64
}

#[test]
fn out_of_space_is_an_error_and_freeing_makes_room_again() {
    let region = ShmRegion::anonymous(64 << 10).unwrap();
    let mut blocks = Vec::new();
    let err = loop {
        match region.alloc([0u64; 512]) {
            Ok(b) => blocks.push(b),
            Err(e) => break e,
        }
    };
    match err {
        Error::OutOfMemory {
            requested,
            largest_free,
        } => {
            assert_eq!(requested, 4096);
            assert!(largest_free < 4096, "{largest_free}");
        }
        e => panic!("expected OutOfMemory, got {e}"),
    }
    assert!(blocks.len() >= 10, "only {} blocks fit", blocks.len());
    // The region is still usable: small objects still fit, existing ones are intact.
    let small = region.alloc(1u8).unwrap();
    assert_eq!(*small, 1);
    let victim = blocks.pop().unwrap();
    // SAFETY: nobody else uses `victim`.
    unsafe { region.free(victim) }.unwrap();
    let again = region.alloc([7u64; 512]).unwrap();
    assert_eq!(again[511], 7);
    assert!(blocks.iter().all(|b| b.iter().all(|&x| x == 0)));
}

#[test]
fn an_allocation_larger_than_the_region_fails_cleanly() {
    let region = ShmRegion::anonymous(64 << 10).unwrap();
    let e = region.alloc_zeroed::<[u64; 1 << 20]>().unwrap_err();
    assert!(matches!(e, Error::OutOfMemory { .. }), "{e}");
    let e = region.alloc_lock_set(usize::MAX / 2).unwrap_err();
    assert!(matches!(e, Error::OutOfMemory { .. }), "{e}");
    assert_eq!(region.stats().unwrap().heap.allocations, 0);
}

/// Objects of different sizes and alignments, each stamped so that an overlap between two
/// live allocations is caught.
enum Obj {
    Small(ShmBox<[AtomicU64; 3]>),
    Medium(ShmBox<[AtomicU64; 16]>),
    Large(ShmBox<[AtomicU64; 500]>),
    Aligned(ShmBox<(GenLockSet<2>, [AtomicU64; 2])>),
}

impl Obj {
    fn new(region: &ShmRegion, kind: u64, stamp: u64) -> lockkit::Result<Obj> {
        let o = match kind {
            0 => Obj::Small(region.alloc_zeroed()?),
            1 => Obj::Medium(region.alloc_zeroed()?),
            2 => Obj::Large(region.alloc_zeroed()?),
            _ => Obj::Aligned(region.alloc_zeroed()?),
        };
        o.words().iter().for_each(|w| w.store(stamp, Relaxed));
        Ok(o)
    }

    fn words(&self) -> &[AtomicU64] {
        match self {
            Obj::Small(b) => &b[..],
            Obj::Medium(b) => &b[..],
            Obj::Large(b) => &b[..],
            Obj::Aligned(b) => {
                assert_eq!(&b.0 as *const _ as usize % 64, 0, "lock set misaligned");
                &b.1[..]
            }
        }
    }

    fn free(self, region: &ShmRegion, stamp: u64) {
        assert!(
            self.words().iter().all(|w| w.load(Relaxed) == stamp),
            "another allocation overlapped this one"
        );
        // SAFETY: each object is used only through its one handle in this test.
        let r = unsafe {
            match self {
                Obj::Small(b) => region.free(b),
                Obj::Medium(b) => region.free(b),
                Obj::Large(b) => region.free(b),
                Obj::Aligned(b) => region.free(b),
            }
        };
        r.unwrap();
    }
}

#[test]
fn alloc_free_churn_of_mixed_sizes_leaves_the_free_space_whole() {
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    let whole = region.stats().unwrap().heap;
    assert_eq!(whole.free_blocks, 1);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut live: Vec<(Obj, u64)> = Vec::new();
    let mut ooms = 0;
    for stamp in 1..=30_000u64 {
        if !live.is_empty() && rng.below(100) < 45 {
            let (o, s) = live.swap_remove(rng.below(live.len() as u64) as usize);
            o.free(&region, s);
        } else {
            match Obj::new(&region, rng.below(4), stamp) {
                Ok(o) => live.push((o, stamp)),
                Err(Error::OutOfMemory { .. }) => ooms += 1,
                Err(e) => panic!("{e}"),
            }
        }
    }
    let busy = region.stats().unwrap().heap;
    assert_eq!(busy.allocations, live.len());
    for (o, s) in live {
        o.free(&region, s);
    }
    let after = region.stats().unwrap().heap;
    assert_eq!(
        after, whole,
        "free space is whole again (ran out {ooms} times)"
    );
}

#[test]
fn threads_allocating_at_once_never_share_a_block() {
    let region = ShmRegion::anonymous(4 << 20).unwrap();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let region = &region;
            s.spawn(move || {
                let mut rng = Rng(t + 1);
                let mut live = Vec::new();
                for i in 0..5_000u64 {
                    let stamp = (t << 32) | i;
                    if live.len() > 50 {
                        let (o, s): (Obj, u64) =
                            live.swap_remove(rng.below(live.len() as u64) as usize);
                        o.free(region, s);
                    }
                    live.push((Obj::new(region, rng.below(4), stamp).unwrap(), stamp));
                }
                for (o, s) in live {
                    o.free(region, s);
                }
            });
        }
    });
    assert_eq!(region.stats().unwrap().heap.free_blocks, 1);
}

#[test]
fn a_corrupted_shm_ptr_is_an_error_not_a_read() {
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let obj = region.alloc(ShmMutex::new(5u64)).unwrap();
    let good = obj.ptr();
    assert_eq!(*region.get(good).unwrap().lock(), 5);
    let start = heap_start(&region);
    let bad_offsets = [
        0,
        1,
        8,
        start,
        good.offset() + 8,
        good.offset() + 1,
        good.offset() - 32,
        region.size() as u64 - 8,
        region.size() as u64,
        region.size() as u64 + 4096,
        u64::MAX,
        u64::MAX - 31,
    ];
    for off in bad_offsets {
        let p = ShmPtr::<ShmMutex<u64>>::from_offset(off);
        assert!(region.get(p).is_err(), "offset {off:#x} resolved");
    }
    // The right offset with the wrong type.
    let e = region
        .get(ShmPtr::<[u64; 2]>::from_offset(good.offset()))
        .unwrap_err();
    assert!(matches!(e, Error::InvalidPtr { .. }), "{e}");
    assert!(e.to_string().contains("another type"), "{e}");
    // A pointer to an object that was freed.
    // SAFETY: `obj` is not used afterwards.
    unsafe { region.free(obj) }.unwrap();
    let e = region.get(good).unwrap_err();
    assert!(e.to_string().contains("freed"), "{e}");
}

#[test]
fn a_handle_from_another_region_is_refused() {
    let a = ShmRegion::anonymous(1 << 16).unwrap();
    let b = ShmRegion::anonymous(1 << 16).unwrap();
    let x = a.alloc(1u32).unwrap();
    // SAFETY: the free is refused, so nothing is freed.
    let e = unsafe { b.free(x) }.unwrap_err();
    assert!(matches!(e, Error::ForeignHandle), "{e}");
}

#[test]
fn zeroed_allocations_hold_unlocked_locks() {
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let lock = region.alloc_zeroed::<GenLock>().unwrap();
    assert!(!lock.is_locked());
    let g = lock.lock();
    assert_eq!(lock.owner().unwrap().pid, std::process::id());
    drop(g);
    assert!(lock.owner().is_none());
}

#[test]
fn named_roots_find_objects_and_check_their_type() {
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let calls = region.alloc(ShmMutex::new([0u32; 4])).unwrap();
    region.publish("calls", &calls).unwrap();
    calls.lock()[1] = 9;
    assert_eq!(
        region.lookup::<ShmMutex<[u32; 4]>>("calls").unwrap().lock()[1],
        9
    );
    match region.lookup::<ShmMutex<[u64; 4]>>("calls").unwrap_err() {
        Error::TypeMismatch {
            expected, found, ..
        } => {
            assert!(expected.contains("u64"), "{expected}");
            assert!(found.contains("u32"), "{found}");
        }
        e => panic!("expected TypeMismatch, got {e}"),
    }
    let e = region.publish("calls", &calls).unwrap_err();
    assert!(matches!(e, Error::RootExists { .. }), "{e}");
    let e = region.lookup::<u8>("nobody").unwrap_err();
    assert!(matches!(e, Error::RootNotFound { .. }), "{e}");
    let e = region.publish(&"n".repeat(32), &calls).unwrap_err();
    assert!(matches!(e, Error::InvalidName { .. }), "{e}");
    region.unpublish("calls").unwrap();
    assert!(region.lookup::<ShmMutex<[u32; 4]>>("calls").is_err());
    region.publish("calls", &calls).unwrap();
    // Freeing an object removes the roots that name it.
    // SAFETY: `calls` is not used afterwards.
    unsafe { region.free(calls) }.unwrap();
    assert!(matches!(
        region.lookup::<ShmMutex<[u32; 4]>>("calls"),
        Err(Error::RootNotFound { .. })
    ));
}

#[test]
fn the_root_table_reports_when_it_is_full() {
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let x = region.alloc(0u8).unwrap();
    let mut n = 0;
    let e = loop {
        match region.publish(&format!("root{n}"), &x) {
            Ok(()) => n += 1,
            Err(e) => break e,
        }
    };
    assert!(
        matches!(e, Error::RootTableFull { capacity } if capacity == n),
        "{e}"
    );
}

#[test]
fn runtime_lock_sets_are_allocated_published_and_freed() {
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    assert!(matches!(region.alloc_lock_set(0), Err(Error::EmptyLockSet)));
    let set = region.alloc_lock_set(5).unwrap();
    assert_eq!(set.len(), 5);
    assert!(set.get(5).is_none());
    assert!(set.iter().all(|l| !l.is_locked()));
    region.publish_lock_set("stripes", &set).unwrap();
    let found = region.lookup_lock_set("stripes").unwrap();
    assert_eq!(found.len(), 5);
    let _g = set.lock(3);
    assert!(found.try_lock(3).is_none(), "the same locks");
    drop(_g);
    let e = region.lookup::<u64>("stripes").unwrap_err();
    assert!(matches!(e, Error::TypeMismatch { .. }), "{e}");
    // SAFETY: `set` and `found` are not used afterwards.
    unsafe { region.free_lock_set(set) }.unwrap();
    assert_eq!(region.stats().unwrap().heap.allocations, 0);
}

#[test]
#[should_panic(expected = "lock set index out of range: the index is 9 but the set has 5 locks")]
fn a_runtime_lock_set_index_out_of_range_panics_naming_both() {
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let set = region.alloc_lock_set(5).unwrap();
    let _g = set.lock(9);
}

#[test]
fn scribbling_over_the_heap_gives_errors_never_a_crash() {
    // A named region, so the test can damage it through its file as a buggy or hostile
    // process would.
    let name = common::unique_name("scribble");
    let region = ShmRegion::create(&name, 1 << 16).unwrap();
    let start = heap_start(&region);
    let mut keep = Vec::new();
    for i in 0..20u64 {
        keep.push(region.alloc([i; 10]).unwrap());
    }
    let ptrs: Vec<_> = keep.iter().map(|b| b.ptr()).collect();
    let path = common::shm_path(&name);
    let mut rng = Rng(42);
    let mut detected = 0;
    for round in 0..300 {
        let mut bytes = std::fs::read(&path).unwrap();
        for _ in 0..8 {
            let at = start as usize + rng.below(4096) as usize;
            let word = if round % 2 == 0 {
                rng.next()
            } else {
                rng.below(1 << 17)
            };
            let at = at & !7;
            bytes[at..at + 8].copy_from_slice(&word.to_ne_bytes());
        }
        use std::os::unix::fs::FileExt;
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .write_all_at(&bytes[start as usize..start as usize + 4096], start)
            .unwrap();
        // Errors are expected; what matters is that none of these crash or hang.
        detected += usize::from(region.stats().is_err());
        match region.alloc(0u64) {
            // SAFETY: `b` is not used afterwards.
            Ok(b) => detected += usize::from(unsafe { region.free(b) }.is_err()),
            Err(_) => detected += 1,
        }
        detected += ptrs.iter().filter(|p| region.get(**p).is_err()).count();
    }
    assert!(
        detected > 100,
        "the damage went unnoticed ({detected} errors)"
    );
}
