use lockkit::{shared_locked, GenLock};

#[shared_locked(crate = "lockkit", crate = "lockkit")]
struct Table {
    lock: GenLock,
    #[guarded_by(lock)]
    n: u64,
}

fn main() {}
