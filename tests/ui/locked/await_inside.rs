use lockkit::{locked, ShmMutex};

async fn tick() {}

async fn work(m: &ShmMutex<u32>) {
    locked!(g = m => {
        *g += 1;
        tick().await;
    });
}

fn main() {
    let _ = work;
}
