use lockkit::{shared_locked, GenRwLock};

#[shared_locked]
struct Routes {
    lock: GenRwLock,
    #[guarded_by(lock)]
    version: u64,
}

fn main() {
    let r = Routes::new(0);
    // A read guard lends `&T`: writing takes write_lock().
    r.read_lock().version += 1;
}
