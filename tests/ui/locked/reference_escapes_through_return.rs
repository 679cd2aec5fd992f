use lockkit::{locked, ShmMutex};

fn first(m: &ShmMutex<[u32; 4]>) -> &u32 {
    locked!(g = m => {
        return &g[0];
    });
}

fn main() {
    let m = ShmMutex::new([0u32; 4]);
    println!("{}", first(&m));
}
