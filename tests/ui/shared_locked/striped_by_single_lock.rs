use lockkit::{shared_locked, GenLock};

#[shared_locked]
struct Table {
    lock: GenLock,
    #[striped_by(lock)]
    cells: [u32; 16],
}

fn main() {}
