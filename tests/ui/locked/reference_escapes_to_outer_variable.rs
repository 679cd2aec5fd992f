use lockkit::{locked, ShmMutex};

fn main() {
    let m = ShmMutex::new([0u32; 4]);
    let zero = 0;
    let mut first = &zero;
    locked!(g = m => {
        first = &g[0];
    });
    println!("{first}");
}
