use lockkit::{shared_locked, GenLock};

type Lock = GenLock;

#[shared_locked]
struct Routes {
    #[rw_lock]
    lock: Lock,
    #[guarded_by(lock)]
    version: u64,
}

fn main() {
    let r = Routes::new(0);
    r.write_lock().version += 1;
}
