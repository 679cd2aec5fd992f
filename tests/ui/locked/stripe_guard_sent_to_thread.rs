use lockkit::{shared_locked, GenLockSet};

#[shared_locked]
struct Table {
    stripes: GenLockSet<4>,
    #[striped_by(stripes)]
    cells: [u32; 16],
}

static TABLE: Table = Table::new([0; 16]);

fn main() {
    let guard = TABLE.lock_cells(3);
    std::thread::spawn(move || drop(guard));
}
