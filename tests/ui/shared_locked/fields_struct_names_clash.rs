use lockkit::{shared_locked, GenLock};

#[shared_locked]
struct Table {
    a_b: GenLock,
    #[guarded_by(a_b)]
    x: u64,
    a__b: GenLock,
    #[guarded_by(a__b)]
    y: u64,
}

fn main() {}
