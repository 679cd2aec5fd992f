#[derive(lockkit::ShmSafe)]
struct Counters {
    calls: u64,
    errors: u32,
}

fn main() {}
