use lockkit::{locked, GenLock};

fn main() {
    let a = GenLock::new();
    locked!(a => {} 42);
}
