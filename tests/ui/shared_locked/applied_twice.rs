use lockkit::{shared_locked, GenLock};

#[shared_locked]
#[shared_locked]
struct Table {
    lock: GenLock,
    #[guarded_by(lock)]
    n: u64,
}

fn main() {
    let t = Table::new(1);
    t.lock_lock().n += 1;
}
