use lockkit::{shared_locked, GenLock};

#[shared_locked]
struct Table {
    lock: GenLock,
    #[cfg_attr(all(), guarded_by(lock))]
    n: u64,
    #[guarded_by(lock)]
    m: u64,
}

fn main() {}
