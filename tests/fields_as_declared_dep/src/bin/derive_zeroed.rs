//! Adversary round 3: as src/main.rs, one process: the derive's `ShmZeroable` impl is bounded
//! on the old field type (`u64: ShmZeroable`), so `alloc_zeroed` makes a struct whose
//! `&'static u64` is null; reading it crashes (SIGSEGV) every run.
#![forbid(unsafe_code)]
use lockkit::{ShmRegion, ShmSafe};

#[derive(ShmSafe)]
#[adv3_pm::pointerise]
#[repr(C)]
pub struct Holder {
    pub p: u64,
}

fn main() {
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    let h = region.alloc_zeroed::<Holder>().unwrap();
    println!("Holder allocated zeroed; its `p: &'static u64` is {:p}", h.p);
    println!("reading it: {}", *h.p);
}
