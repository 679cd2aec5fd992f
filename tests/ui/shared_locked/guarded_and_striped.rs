use lockkit::{shared_locked, GenLock, GenLockSet};

#[shared_locked]
struct Table {
    lock: GenLock,
    stripes: GenLockSet<4>,
    #[guarded_by(lock)]
    #[striped_by(stripes)]
    per: [u32; 8],
}

fn main() {}
