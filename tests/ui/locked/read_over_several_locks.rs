use lockkit::{locked, RwLock};

fn main() {
    let a = RwLock::new(1u32);
    let b = RwLock::new(2u32);
    locked!(read a, b => {});
}
