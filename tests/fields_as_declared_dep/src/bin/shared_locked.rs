//! Adversary round 3: as src/main.rs, for `#[shared_locked(no_new)]`: an attribute macro
//! after it rewrites the struct it emitted (`hits: u64` → `&'static u64`); the emitted
//! `ShmSafe` impl (no per-field bounds) and `ShmZeroable` impl (bounds on the old `u64`)
//! still hold, so `alloc_zeroed` makes a null `&'static u64` and reading it crashes
//! (SIGSEGV), in one process, every run.
#![forbid(unsafe_code)]
use lockkit::{shared_locked, GenLock, ShmRegion};

#[shared_locked(no_new)]
#[adv3_pm::pointerise]
pub struct Counter {
    lock: GenLock,
    #[guarded_by(lock)]
    n: u32,
    pub hits: u64,
}

fn main() {
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    let c = region.alloc_zeroed::<Counter>().unwrap();
    c.lock_lock().n += 1;
    println!("Counter allocated zeroed; its `hits: &'static u64` is at {:p}", c.hits);
    println!("reading it: {}", *c.hits);
}
