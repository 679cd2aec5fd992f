// A field whose type's name reads like a std heap type (`Box`, `Vec`, `String`, ...) is checked
// by that kind's assertion trait. Those traits have `ShmSafe` as supertrait, so a crate
// cannot implement one for a type that is not `ShmSafe` (here a reference, behind an alias
// named `Box`) and get lockkit's real `ShmSafe` for a struct holding it: the impl itself is
// refused. (An adversarial review found the unsealed traits let this compile.)
#![forbid(unsafe_code)]

pub struct Mine(pub u64);

type Box = &'static Mine;

impl lockkit::__private::ShmSafeNotBox for &'static Mine {}

#[derive(lockkit::ShmSafe)]
#[repr(C)]
pub struct Sneaky {
    r: Box,
}

static MINE: Mine = Mine(42);

fn is_real_shm_safe<T: lockkit::ShmSafe>() {}

fn main() {
    is_real_shm_safe::<Sneaky>();
    let region = lockkit::ShmRegion::anonymous(1 << 16).unwrap();
    let s = region.alloc(Sneaky { r: &MINE }).unwrap();
    assert_eq!(s.r.0, 42); // a process-local pointer, read back out of shared memory
}
