//! Taking and releasing a group lock allocates nothing, chained locks or not (a counting
//! global allocator; only this test's thread is counted).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use lockkit::grp::{GrpLock, SetEntry};
use lockkit::{GenLock, RecLock, RwLock, ShmRegion};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; counting touches only const thread-locals.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCS.with(|a| a.set(a.get() + 1));
        }
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCS.with(|a| a.set(a.get() + 1));
        }
        // SAFETY: forwarded contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn allocations_in(f: impl FnOnce()) -> u64 {
    ALLOCS.with(|a| a.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCS.with(Cell::get)
}

#[test]
fn acquiring_and_releasing_a_group_allocates_nothing() {
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    let set = Arc::new(region.alloc_lock_set(4).unwrap());
    let plain = GrpLock::new();
    let chained = GrpLock::new();
    let inner = GrpLock::new();
    inner.chain_lock(Arc::new(GenLock::new()), 1).unwrap();
    chained.chain_lock(Arc::new(GenLock::new()), -2).unwrap();
    chained.chain_lock(Arc::new(RecLock::new()), -1).unwrap();
    chained
        .chain_lock(Arc::new(SetEntry::new(set.clone(), 1)), 1)
        .unwrap();
    chained.chain_lock(Arc::new(RwLock::new(0u32)), 2).unwrap();
    chained.chain_lock(Arc::new(inner.clone()), 3).unwrap();
    // Warm up (thread-locals, lazy initialisation).
    drop(plain.lock());
    drop(chained.lock());
    let n = allocations_in(|| {
        for _ in 0..1000 {
            drop(plain.lock());
            let g = chained.lock();
            let again = chained.lock();
            drop(again);
            drop(g);
            drop(chained.try_lock().expect("free"));
            drop(chained.try_lock_for(std::time::Duration::from_millis(1)));
        }
    });
    assert_eq!(n, 0, "allocations in 1000 rounds of acquire/release");
}
