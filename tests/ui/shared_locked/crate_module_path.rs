// `crate = ".."` names a renamed lockkit crate, never a module path.
use lockkit::GenLock;

mod fake {
    pub use lockkit::*;
}

#[lockkit::shared_locked(crate = "self::fake")]
struct Table {
    lock: GenLock,
    #[guarded_by(lock)]
    n: u64,
}

fn main() {}
