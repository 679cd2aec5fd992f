use lockkit::{shared_locked, GenLock};

#[shared_locked]
struct Registrar {
    lock: GenLock,
    #[guarded_by(lock)]
    name: &'static str,
}

fn main() {}
