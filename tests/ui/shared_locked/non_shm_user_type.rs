use lockkit::{shared_locked, GenLock};

/// A user type that never promised to be ShmSafe.
struct Session {
    id: u64,
}

#[shared_locked]
struct Registrar {
    lock: GenLock,
    #[guarded_by(lock)]
    session: Session,
}

fn main() {}
