use lockkit::{locked, shared_locked, GenLock, GenRwLock};

#[shared_locked]
struct Routes {
    lock: GenRwLock,
    #[guarded_by(lock)]
    version: u64,
    other: GenLock,
    #[guarded_by(other)]
    hits: u64,
}

fn main() {
    let r = Routes::new(0, 0);
    locked!(h = r.other, g = r.lock => { g.version += h.hits });
}
