use lockkit::ShmRegion;
use std::num::NonZeroU32;

fn main() {
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    // Zero bytes are not a NonZeroU32: zeroed allocation must refuse it.
    let _ = region.alloc_zeroed::<[u8; 4]>();
    let _ = region.alloc_zeroed::<NonZeroU32>();
}
