use lockkit::{shared_locked, GenLock};

#[shared_locked]
struct Table {
    calls: GenLock,
    #[guarded_by(calls)]
    a: u32,
    calls_for: GenLock,
    #[guarded_by(calls_for)]
    b: u32,
}

fn main() {
    let t = Table::new(1, 2);
    t.lock_calls().a += 1;
}
