// A fieldless enum with no variant at 0: zero bytes are not a value, so it cannot be
// allocated zeroed.
#[derive(lockkit::ShmSafe)]
#[repr(u8)]
enum Code {
    Ok = 200,
    NotFound = 404,
}

fn main() {
    let region = lockkit::ShmRegion::anonymous(1 << 16).unwrap();
    let _ = region.alloc_zeroed::<Code>();
}
