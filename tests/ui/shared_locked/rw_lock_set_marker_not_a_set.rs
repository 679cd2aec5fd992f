use lockkit::{shared_locked, GenLockSet};

type Stripes = GenLockSet<4>;

#[shared_locked]
struct Locations {
    #[rw_lock_set]
    stripes: Stripes,
    #[striped_by(stripes)]
    contact: [u32; 16],
}

fn main() {}
