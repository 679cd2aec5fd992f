use lockkit::shared_locked;
use std::sync::Arc;

#[shared_locked]
struct Registrar {
    config: Arc<u32>,
}

fn main() {}
