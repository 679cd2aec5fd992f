use lockkit::{locked, GenLock};

fn main() {
    let lock = GenLock::new();
    locked!(g = lock => {
        // The block is lent the guard, not given it: it cannot take it away.
        let _mine = *g;
    });
}
