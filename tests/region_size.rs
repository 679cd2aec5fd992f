//! `RegionSize` gives the size of a region from what will go in it: a region of that size
//! holds exactly what was counted (issue 24.6).

use std::sync::atomic::AtomicU64;

use lockkit::raw::Spin;
use lockkit::{shared_locked, Error, GenLock, GenLockSet, RegionSize, ShmMutex, ShmRegion};

#[shared_locked]
pub struct Calls {
    lock: GenLock,
    #[guarded_by(lock)]
    active: u64,
    stripes: GenLockSet<8>,
    #[striped_by(stripes)]
    per_user: [u32; 100],
}

#[shared_locked]
pub struct Entry {
    lock: GenLock,
    #[guarded_by(lock)]
    hits: [u64; 12],
}

/// A type aligned to more than a block header.
#[derive(Clone, Copy)]
#[repr(C, align(256))]
pub struct Wide([u8; 300]);
// SAFETY: plain bytes.
unsafe impl lockkit::ShmSafe for Wide {
    const LAYOUT: &'static lockkit::layout::TypeLayout =
        &lockkit::layout::TypeLayout::opaque::<Self>("region_size::Wide", "");
}

fn page() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// Allocates (and keeps: dropping a handle frees nothing) 2000 counters, 300 entries and
/// 40 mutexes of 1 KiB into `region`, in an
/// interleaved order; the first error if any.
fn fill(region: &ShmRegion) -> Result<(), Error> {
    for i in 0..2000 {
        region.alloc(AtomicU64::new(i))?;
        if i % 2 == 0 && i < 600 {
            region.alloc_zeroed::<Entry>()?;
        }
        if i % 50 == 0 {
            region.alloc(ShmMutex::new([0u8; 1024]))?;
        }
    }
    Ok(())
}

/// What `fill` allocates: types aligned to at most a block header (32 bytes), which the
/// allocator places with no padding, so the count is exact.
fn counted() -> RegionSize {
    let mut size = RegionSize::new();
    size.objects::<AtomicU64>(2000)
        .objects::<Entry>(300)
        .objects::<ShmMutex<[u8; 1024]>>(40);
    size
}

#[test]
fn a_region_sized_for_its_objects_holds_them_and_one_page_less_does_not() {
    let size = counted().bytes().unwrap();
    assert_eq!(size % page(), 0);
    let region = ShmRegion::anonymous(size).unwrap();
    fill(&region).expect("everything counted fits");
    let stats = region.stats().unwrap();
    assert_eq!(stats.heap.allocations, 2000 + 300 + 40);
    assert_eq!(stats.heap.used, counted().heap_bytes(), "blocks as counted");
    // Every type is described in the registry (a full one would leave a type out).
    assert!(stats.type_registry.1 > 0 && stats.type_registry.1 <= stats.type_registry.0);
    assert!(
        stats.heap.free < page(),
        "the smallest size: {} bytes left free",
        stats.heap.free
    );

    let smaller = ShmRegion::anonymous(size - page()).unwrap();
    match fill(&smaller) {
        Err(Error::OutOfMemory { .. }) => {}
        other => panic!("a page less still held it all: {other:?}"),
    }
}

#[test]
fn lock_sets_aligned_types_and_roots_fit_in_a_region_sized_for_them() {
    let size = RegionSize::new()
        .lock_set(100)
        .lock_set_with::<Spin>(33)
        .objects::<Wide>(50)
        .object::<Calls>()
        .roots(32)
        .bytes()
        .unwrap();
    let region = ShmRegion::anonymous(size).unwrap();
    let set = region.alloc_lock_set(100).unwrap();
    let spin = region.alloc_lock_set_with::<Spin>(33).unwrap();
    let wide: Vec<_> = (0..50)
        .map(|_| region.alloc(Wide([1; 300])).unwrap())
        .collect();
    let calls = region.alloc_zeroed::<Calls>().unwrap();
    for (i, w) in wide.iter().enumerate().take(30) {
        region.publish(&format!("wide{i}"), w).unwrap();
    }
    region.publish_lock_set("set", &set).unwrap();
    region.publish("calls", &calls).unwrap();
    assert_eq!(region.stats().unwrap().heap.allocations, 53);
    drop(spin);
}

#[test]
fn the_limits_are_errors_when_counted() {
    assert!(matches!(
        RegionSize::new().roots(33).bytes(),
        Err(Error::RootTableFull { capacity: 32 })
    ));
    assert!(matches!(
        RegionSize::new().objects::<[u8; 4096]>(usize::MAX).bytes(),
        Err(Error::OutOfMemory { .. })
    ));
    // The smallest region takes nothing and still works.
    let smallest = RegionSize::new().bytes().unwrap();
    let region = ShmRegion::anonymous(smallest).unwrap();
    assert!(region.alloc(1u64).is_ok());
}
