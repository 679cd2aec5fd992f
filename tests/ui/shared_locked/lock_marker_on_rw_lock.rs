// `#[lock]` marks an exclusive lock under another name; a GenRwLock under another name is
// marked `#[rw_lock]`.
use lockkit::{shared_locked, GenRwLock};

type Lock = GenRwLock;

#[shared_locked]
struct Routes {
    #[lock]
    lock: Lock,
    #[guarded_by(lock)]
    version: u64,
}

fn main() {}
