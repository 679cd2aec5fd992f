use lockkit::{shared_locked, GenLock};

#[shared_locked]
struct Registrar {
    lock: GenLock,
    #[guarded_by(lock)]
    last: Box<u64>,
}

fn main() {}
