#[derive(lockkit::ShmSafe)]
#[repr(C)]
struct Node {
    next: *const Node,
    value: u64,
}

fn main() {}
