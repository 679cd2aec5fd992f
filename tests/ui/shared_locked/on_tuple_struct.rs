use lockkit::{shared_locked, GenLock};

#[shared_locked]
struct Pair(GenLock, u64);

fn main() {}
