use lockkit::{locked, shared_locked, GenRwLockSet};

#[shared_locked]
struct Table {
    stripes: GenRwLockSet<4>,
    #[striped_by(stripes)]
    per: [u32; 8],
}

fn main() {
    let t = Table::new([0; 8]);
    locked!(read x = t.per[1] => { let _ = *x; });
}
