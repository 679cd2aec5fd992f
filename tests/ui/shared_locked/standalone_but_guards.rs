use lockkit::{shared_locked, GenLock};

#[shared_locked]
struct Table {
    #[standalone]
    lock: GenLock,
    #[guarded_by(lock)]
    hits: u64,
}

fn main() {}
