use lockkit::{locked, ShmMutex};

fn main() {
    let m = ShmMutex::new(0u32);
    locked!(read g = m => { let _ = g; });
}
