use lockkit::{shared_locked, GenRwLock};

#[shared_locked]
struct Locations {
    lock: GenRwLock,
    #[striped_by(lock)]
    contact: [u32; 16],
}

fn main() {}
