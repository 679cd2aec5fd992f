// A misspelt crate name in `#[shm_safe(crate = ..)]` is one error, at the name.
#[derive(lockkit::ShmSafe)]
#[shm_safe(crate = "lockit")]
#[repr(C)]
struct Table {
    hits: u64,
    slots: [u32; 4],
}

fn main() {}
