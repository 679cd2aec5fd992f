use lockkit::{shared_locked, GenLock};

#[shared_locked]
struct Table {
    lock: GenLock,
    #[guarded_by(lock)]
    #[lock]
    n: u64,
}

fn main() {}
