use lockkit::{shared_locked, GenLockSet};

#[shared_locked]
struct Table {
    stripes: GenLockSet<4>,
    #[striped_by(stripe)]
    cells: [u32; 16],
}

fn main() {}
