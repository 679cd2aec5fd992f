use lockkit::{shared_locked, GenLock};

#[shared_locked]
struct Table {
    outer: GenLock,
    #[guarded_by(outer)]
    inner: GenLock,
    // Guarded by a lock that is itself reachable only through `outer`'s guard.
    #[guarded_by(inner)]
    hits: u64,
}

fn main() {}
