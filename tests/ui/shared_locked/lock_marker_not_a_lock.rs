use lockkit::shared_locked;

#[shared_locked]
struct Table {
    #[lock]
    lock: u64,
    #[guarded_by(lock)]
    n: u64,
}

fn main() {}
