use lockkit::{shared_locked, GenLock};

#[shared_locked]
struct Counters {
    lock: GenLock,
    hits: std::sync::atomic::AtomicU64,
}

fn main() {}
