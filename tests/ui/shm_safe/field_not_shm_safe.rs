// One error, at the field's type, with what to use instead; the struct is not reported
// again where it is used.
#[derive(lockkit::ShmSafe)]
#[repr(C)]
struct Binding {
    aor: String,
    expires: u32,
}

fn main() {
    let region = lockkit::ShmRegion::anonymous(1 << 16).unwrap();
    let _ = region.lookup::<Binding>("b");
}
