use lockkit::{locked, ShmMutex};

fn main() {
    let m = ShmMutex::new([0u32; 4]);
    let first: &u32 = loop {
        locked!(g = m => {
            break &g[0];
        });
    };
    println!("{first}");
}
