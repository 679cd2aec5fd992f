// Shared objects are never dropped (another process may still use them), so a type with
// drop glue cannot be allocated: the error names the type and the call.
#[derive(lockkit::ShmSafe)]
#[repr(C)]
struct Session {
    id: u64,
}

impl Drop for Session {
    fn drop(&mut self) {
        println!("closing {}", self.id);
    }
}

fn main() {
    let region = lockkit::ShmRegion::anonymous(1 << 16).unwrap();
    let _s = region.alloc(Session { id: 1 });
}
