use lockkit::{shared_locked, GenLockSet};

#[shared_locked]
struct Table {
    stripes: GenLockSet<0>,
    #[striped_by(stripes)]
    cells: [u32; 4],
}

fn main() {}
