// A generic struct is refused once; the user's calls to `new` and the accessors still
// resolve (no second error).
use lockkit::{shared_locked, GenLock};

#[shared_locked]
struct Table<T> {
    lock: GenLock,
    #[guarded_by(lock)]
    value: T,
}

fn main() {
    let t = Table::new(1u32);
    t.lock_lock().value += 1;
}
