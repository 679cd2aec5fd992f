use lockkit::{shared_locked, GenLock, ShmSafe};

#[shared_locked]
#[derive(ShmSafe)]
struct Table {
    lock: GenLock,
    #[guarded_by(lock)]
    n: u64,
}

fn main() {
    let t = Table::new(1);
    t.lock_lock().n += 1;
}
