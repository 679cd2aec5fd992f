use lockkit::{shared_locked, GenLock};

#[shared_locked]
struct Table {
    a: GenLock,
    b: GenLock,
    #[guarded_by(a)]
    #[guarded_by(b)]
    n: u64,
    #[guarded_by(b)]
    m: u64,
}

fn main() {}
