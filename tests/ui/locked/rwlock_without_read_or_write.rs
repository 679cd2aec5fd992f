use lockkit::{locked, RwLock};

fn main() {
    let routes = RwLock::new(0u32);
    locked!(r = routes => { *r += 1 });
}
