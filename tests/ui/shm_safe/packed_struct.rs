#[derive(lockkit::ShmSafe)]
#[repr(C, packed)]
struct Wire {
    kind: u8,
    len: u32,
}

fn main() {}
