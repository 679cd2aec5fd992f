use lockkit::{locked, GenLock};

fn main() {
    let a = GenLock::new();
    let name = String::from("b");
    locked!(a, name => {});
}
