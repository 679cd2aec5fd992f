use lockkit::{shared_locked, GenLock};

#[shared_locked]
struct Counters {
    lock: GenLock,
    #[guarded_by(lock)]
    hits: u64,
}

fn main() {
    let c = Counters::new(0);
    // Reading the guarded field without taking its lock.
    let _hits = c.hits;
}
