use lockkit::{shared_locked, GenRwLock};

#[shared_locked]
struct Routes {
    lock: GenRwLock,
    #[guarded_by(lock)]
    version: u64,
}

fn main() {
    let r = Routes::new(0);
    // Reading the guarded field without taking its lock, as a reader or as the writer.
    let _v = r.version;
}
