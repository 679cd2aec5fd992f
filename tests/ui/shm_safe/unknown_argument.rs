#[derive(lockkit::ShmSafe)]
#[shm_safe(krate = "lk")]
#[repr(C)]
struct Counters {
    calls: u64,
}

fn main() {}
