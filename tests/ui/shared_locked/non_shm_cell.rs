use lockkit::shared_locked;

#[shared_locked]
struct Registrar {
    last: std::cell::Cell<*const u8>,
}

fn main() {}
