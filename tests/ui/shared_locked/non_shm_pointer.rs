use lockkit::shared_locked;

#[shared_locked]
struct Registrar {
    next: *mut u8,
}

fn main() {}
