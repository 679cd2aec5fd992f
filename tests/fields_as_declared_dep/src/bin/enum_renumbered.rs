//! Adversary round 4: the derive saw `A` without a discriminant (0) and wrote ShmZeroable;
//! the enum rustc compiles is `A = 1, B = 2`, so `alloc_zeroed` handed out a `&State` over 0.
#![forbid(unsafe_code)]
use lockkit::ShmRegion;

#[derive(lockkit::ShmSafe, Clone, Copy)]
#[adv3_pm::renumber]
#[repr(u8)]
pub enum State {
    A,
    B,
}

fn main() {
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let s = region.alloc_zeroed::<State>().unwrap();
    println!("a State holding {}", *s as u8);
}
