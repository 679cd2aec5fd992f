// A crate that names itself and supplies look-alike checks that accept anything, with
// lockkit's real `ShmSafe` re-exported beside them, and no `unsafe` anywhere: the derive's
// impl would be lockkit's `ShmSafe` for a struct holding a reference. It must not compile.
#![forbid(unsafe_code)]

extern crate self as shim;

pub use lockkit::*;

pub mod __private {
    pub use lockkit::__private::*;

    // The shapes of the checks before they moved behind `Checked`, accepting anything.
    pub const fn assert_shm_safe<T: ?Sized>() {}
    pub const fn assert_whole_field(_: bool, _: bool) {}

    pub struct Checked;

    impl Checked {
        pub const fn assert_shm_safe<T: ?Sized>() {}
        pub const fn assert_whole_field(_: bool, _: bool) {}
    }
}

type Ref = &'static u64;

#[derive(lockkit::ShmSafe)]
#[shm_safe(crate = "shim")]
#[repr(C)]
struct Sneaky {
    r: Ref,
}

fn main() {
    let region = lockkit::ShmRegion::anonymous(1 << 16).unwrap();
    let _ = region.alloc(Sneaky { r: &5 });
}
