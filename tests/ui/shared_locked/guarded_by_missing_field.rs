use lockkit::{shared_locked, GenLock};

#[shared_locked]
struct Counters {
    lock: GenLock,
    #[guarded_by(lokc)]
    hits: u64,
}

fn main() {}
