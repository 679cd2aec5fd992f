use lockkit::{shared_locked, GenLock};

#[shared_locked]
struct Table {
    lock: GenLock,
    #[guarded_by(lock)]
    n: u64,
}

impl Table {
    fn new() -> Self {
        unimplemented!()
    }
}

fn main() {
    let _ = Table::new();
}
