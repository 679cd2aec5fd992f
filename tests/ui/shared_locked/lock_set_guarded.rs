use lockkit::{shared_locked, GenLock, GenLockSet};

#[shared_locked]
struct Table {
    lock: GenLock,
    #[guarded_by(lock)]
    stripes: GenLockSet<4>,
    #[striped_by(stripes)]
    per: [u32; 8],
}

fn main() {}
