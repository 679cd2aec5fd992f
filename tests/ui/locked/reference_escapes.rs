use lockkit::{locked, ShmMutex};

fn main() {
    let m = ShmMutex::new([0u32; 4]);
    // A reference to guarded data must not outlive the block that holds the lock.
    let first: &u32 = locked!(g = m => { &g[0] });
    println!("{first}");
}
