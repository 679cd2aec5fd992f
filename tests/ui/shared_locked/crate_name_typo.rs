use lockkit::{shared_locked, GenLock, GenLockSet};

#[shared_locked(crate = "lockit")]
struct Table {
    lock: GenLock,
    #[guarded_by(lock)]
    n: u64,
    stripes: GenLockSet<4>,
    #[striped_by(stripes)]
    per: [u32; 8],
}

fn main() {
    let t = Table::new(1, [0; 8]);
    t.lock_lock().n += 1;
}
