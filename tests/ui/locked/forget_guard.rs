use lockkit::{locked, GenLock};

fn main() {
    let lock = GenLock::new();
    locked!(g = lock => {
        // Forgetting the guard would leave the lock held forever.
        std::mem::forget(*g);
    });
}
