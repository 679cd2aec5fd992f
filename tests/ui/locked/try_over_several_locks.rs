use lockkit::{locked, GenLock};

fn main() {
    let a = GenLock::new();
    let b = GenLock::new();
    locked!(try a, b => {} else {});
}
