use lockkit::{shared_locked, GenLock};

#[shared_locked]
struct Table {
    #[standalone(yes)]
    admin: GenLock,
}

fn main() {}
