#[derive(lockkit::ShmSafe)]
#[repr(u8)]
enum Contact {
    Unknown,
    Bound(u32),
}

fn main() {}
