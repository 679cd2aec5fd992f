use lockkit::{shared_locked, GenRwLock};

#[shared_locked]
struct Table {
    calls: GenRwLock,
    #[guarded_by(calls)]
    a: u32,
    calls_for: GenRwLock,
    #[guarded_by(calls_for)]
    b: u32,
}

fn main() {
    let t = Table::new(1, 2);
    t.write_calls().a += 1;
}
