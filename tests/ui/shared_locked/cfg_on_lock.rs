use lockkit::{shared_locked, GenLock};

#[shared_locked]
struct Table {
    #[cfg(unix)]
    lock: GenLock,
    #[guarded_by(lock)]
    n: u64,
}

fn main() {}
