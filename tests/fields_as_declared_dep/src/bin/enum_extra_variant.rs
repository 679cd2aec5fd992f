//! Adversary round 4: the derive listed the variants it read (`A = 0, B = 1`) in LAYOUT; the
//! enum rustc compiles has `Extra = 2` too, so its digest equalled an honest two-variant
//! enum's and `lookup` handed out that enum over the byte 2.
#![forbid(unsafe_code)]
use lockkit::ShmRegion;

#[derive(lockkit::ShmSafe)]
#[adv3_pm::add_variant]
#[repr(u8)]
pub enum Mode {
    A,
    B,
}

fn main() {
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let m = region.alloc(Mode::Extra).unwrap();
    region.publish("mode", &m).unwrap();
}
