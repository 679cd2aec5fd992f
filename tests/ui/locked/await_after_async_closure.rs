// An `async` closure earlier in the block does not hide a later `.await` in the block.
use lockkit::{locked, ShmMutex};

async fn work(m: &ShmMutex<u32>) {
    locked!(g = m => {
        let one = async || 1;
        if *g == 0 {
            *g += one().await;
        }
    });
}

fn main() {
    let _ = work;
}
