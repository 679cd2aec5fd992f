use lockkit::{shared_locked, GenLock};

#[shared_locked]
struct Table<T> {
    lock: GenLock,
    #[guarded_by(lock)]
    value: T,
}

fn main() {}
