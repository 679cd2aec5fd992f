use lockkit::{shared_locked, GenLock};

#[shared_locked]
struct Counters {
    lock: GenLock,
    misses: u64,
    #[guarded_by(misses)]
    hits: u64,
}

fn main() {}
