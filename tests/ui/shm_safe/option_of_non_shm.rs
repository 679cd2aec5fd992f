// The offending part inside the field's type is named, with its own advice.
#[derive(lockkit::ShmSafe)]
#[repr(C)]
struct Slot {
    contacts: Option<Vec<u8>>,
}

fn main() {}
