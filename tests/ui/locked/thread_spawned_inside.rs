use lockkit::{locked, ShmMutex};

fn main() {
    let m = ShmMutex::new(0u32);
    locked!(g = m => {
        std::thread::spawn(move || {
            *g += 1;
        });
    });
}
