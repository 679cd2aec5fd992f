use lockkit::{shared_locked, GenLockSet};

#[shared_locked]
struct Table {
    stripes: GenLockSet<4>,
    #[guarded_by(stripes)]
    hits: u64,
}

fn main() {
    let t = Table::new(0);
    // No cascade after the error: the accessors still resolve.
    let _ = t.lock_stripes();
}
