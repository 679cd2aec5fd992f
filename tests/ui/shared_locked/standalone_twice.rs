use lockkit::{shared_locked, GenLock};

#[shared_locked]
struct Table {
    #[standalone]
    #[standalone]
    admin: GenLock,
}

fn main() {}
