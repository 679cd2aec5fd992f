// A lock set striped by another set, whose own stripes guard a field: one error, at the
// field that names it.
use lockkit::{shared_locked, GenLockSet};

#[shared_locked]
struct Table {
    outer: GenLockSet<2>,
    #[striped_by(outer)]
    stripes: GenLockSet<4>,
    #[striped_by(stripes)]
    per: [u32; 8],
}

fn main() {}
