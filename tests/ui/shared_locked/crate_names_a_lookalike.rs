// `#[shared_locked(crate = ..)]` naming a crate that names itself and supplies look-alike
// checks (lockkit's real traits re-exported beside them, no `unsafe` anywhere) must not
// compile: the generated `unsafe impl ShmSafe` would stand on checks that accept anything.
#![forbid(unsafe_code)]

extern crate self as shim;

pub use lockkit::*;

pub mod __private {
    pub use lockkit::__private::*;

    // The shapes of the checks before they moved behind `Checked`, accepting anything.
    pub const fn assert_shm_safe<T: ?Sized>() {}
    pub const fn assert_lock<T: ?Sized>() {}

    pub struct Checked;

    impl Checked {
        pub const fn is_striped<T>(_: &lockkit::__private::Striped<T>) {}
        pub const fn is_shm_mutex<T: lockkit::ShmSafe, R: lockkit::raw::RawLock>(
            _: &lockkit::ShmMutex<T, R>,
        ) {
        }
        pub const fn assert_shm_safe<T: ?Sized>() {}
        pub const fn assert_lock<T: ?Sized>() {}
    }
}

type Ref = &'static u64;

#[lockkit::shared_locked(crate = "shim")]
pub struct Table {
    lock: lockkit::GenLock,
    #[guarded_by(lock)]
    r: Ref,
}

fn main() {}
