// The same look-alike crate, but with lockkit's own checks re-exported: they are the real
// ones, and a field that cannot live in shared memory is refused as it would be without
// `crate = ".."`.
#![forbid(unsafe_code)]

extern crate self as shim;

pub use lockkit::*;

pub mod __private {
    pub use lockkit::__private::*;

    pub const fn assert_shm_safe<T: ?Sized>() {}
}

type Ref = &'static u64;

#[derive(lockkit::ShmSafe)]
#[shm_safe(crate = "shim")]
#[repr(C)]
struct Sneaky {
    r: Ref,
}

fn main() {}
