// A region's mapping is only page-aligned, so a type aligned to more than 4096 bytes could
// not be placed in it at its alignment: allocating (or looking up) one does not compile.
#[derive(lockkit::ShmSafe)]
#[repr(C, align(1048576))]
struct Big {
    x: u64,
}

fn main() {
    let region = lockkit::ShmRegion::anonymous(4 << 20).unwrap();
    let _b = region.alloc(Big { x: 7 });
}
