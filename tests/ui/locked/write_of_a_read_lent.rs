use lockkit::{locked, RwLock};

fn main() {
    let a = RwLock::new(1u32);
    let b = RwLock::new(2u32);
    // `read` lends `&T`: writing needs `write`.
    locked!(read x = a, write y = b => { *x += *y });
}
