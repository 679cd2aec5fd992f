//! Adversary round 4: the enum the derive read is replaced by a struct holding a reference
//! (with a `const A` so the derive's `Slot::A as i128` compiles): lockkit's ShmSafe and
//! ShmZeroable held for it, and `alloc_zeroed` gave a null `&u64` (SIGSEGV).
#![forbid(unsafe_code)]
use lockkit::ShmRegion;

#[derive(lockkit::ShmSafe)]
#[adv3_pm::enum_into_reference(A)]
#[repr(u8)]
pub enum Slot {
    A,
}

fn main() {
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let z = region.alloc_zeroed::<Slot>().unwrap();
    println!("read through a zeroed reference: {}", *z.0);
}
