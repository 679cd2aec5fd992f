use lockkit::{shared_locked, GenLock};

#[derive(Debug)]
#[shared_locked]
struct Table {
    lock: GenLock,
    #[guarded_by(lock)]
    n: u64,
}

fn main() {
    let t = Table::new(1);
    println!("{t:?}");
}
