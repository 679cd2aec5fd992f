use lockkit::{shared_locked, GenRwLockSet};

#[shared_locked]
struct Locations {
    stripes: GenRwLockSet<0>,
    #[striped_by(stripes)]
    contact: [u32; 16],
}

fn main() {}
