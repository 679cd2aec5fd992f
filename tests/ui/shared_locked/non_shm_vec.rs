use lockkit::{shared_locked, GenLock};

#[shared_locked]
struct Registrar {
    lock: GenLock,
    #[guarded_by(lock)]
    contacts: Option<Vec<u8>>,
}

fn main() {}
