use lockkit::{locked, shared_locked, GenLockSet};

#[shared_locked]
struct Table {
    stripes: GenLockSet<4>,
    #[striped_by(stripes)]
    per: [u32; 8],
}

fn main() {
    let t = Table::new([0; 8]);
    locked!(x = t.per[1] => { *x += 1 });
}
