use lockkit::{shared_locked, GenLock};

#[shared_locked]
struct Table {
    #[guarded_by(lock)]
    lock: GenLock,
}

fn main() {}
