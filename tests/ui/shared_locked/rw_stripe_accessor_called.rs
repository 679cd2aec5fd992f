// A field striped by reader-writer locks is read or written, not locked.
use lockkit::{shared_locked, GenRwLockSet};

#[shared_locked]
struct Locations {
    stripes: GenRwLockSet<4>,
    #[striped_by(stripes)]
    contact: [u32; 16],
}

fn main() {
    let t = Locations::new([0; 16]);
    *t.lock_contact(3) += 1;
}
