// An `.await` that a macro writes (any select!/join!-style macro) is not in the block's
// tokens: the block runs in a closure, which is not async, so it is E0728 all the same.
use lockkit::{locked, ShmMutex};

async fn tick() {}

macro_rules! wait {
    ($e:expr) => {
        $e.await
    };
}

async fn work(m: &ShmMutex<u32>) {
    locked!(g = m => {
        *g += 1;
        wait!(tick());
    });
}

fn main() {
    let _ = work;
}
