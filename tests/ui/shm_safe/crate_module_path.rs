// `crate = ".."` names a renamed lockkit crate, never a module: a module that re-exported
// lockkit's traits beside checks of its own would make any type ShmSafe without `unsafe`.
mod fake {
    pub use lockkit::*;
}

#[derive(lockkit::ShmSafe)]
#[shm_safe(crate = "crate::fake")]
#[repr(C)]
pub struct Evil {
    pub f: u64,
}

fn main() {}
