// A field guarded by a reader-writer lock is read or written, not locked: `lock_<lock>` says
// which accessors to call instead (one error, although the code goes on to use the guard).
use lockkit::{shared_locked, GenRwLock};

#[shared_locked]
struct Routes {
    lock: GenRwLock,
    #[guarded_by(lock)]
    next_hop: [u32; 4],
}

fn main() {
    let r = Routes::new([0; 4]);
    let mut g = r.lock_lock();
    g.next_hop[0] = 1;
}
