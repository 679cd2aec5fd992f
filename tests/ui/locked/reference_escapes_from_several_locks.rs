use lockkit::{locked, GenLock, ShmMutex};

fn main() {
    let a = GenLock::new();
    let m = ShmMutex::new([0u32; 4]);
    let first: &u32 = locked!(a, g = m => { &g[0] });
    println!("{first}");
}
