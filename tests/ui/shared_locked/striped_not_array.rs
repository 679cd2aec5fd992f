use lockkit::{shared_locked, GenLockSet};

#[shared_locked]
struct Buckets {
    stripes: GenLockSet<4>,
    #[striped_by(stripes)]
    count: u64,
}

fn main() {}
