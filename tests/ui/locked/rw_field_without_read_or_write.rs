use lockkit::{locked, shared_locked, GenRwLock};

#[shared_locked]
struct Routes {
    lock: GenRwLock,
    #[guarded_by(lock)]
    version: u64,
}

fn main() {
    let r = Routes::new(0);
    locked!(g = r.lock => { g.version += 1 });
}
