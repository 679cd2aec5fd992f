use lockkit::{locked, ShmMutex};

fn main() {
    let m = ShmMutex::new(0u32);
    locked!(mut g = m => { *g += 1 });
}
