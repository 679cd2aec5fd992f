// Nor what a guard lent: it lives no longer than the guard, and the worker may outlive both.
use lockkit::workers::Workers;
use lockkit::{ShmMutex, ShmRegion};

fn main() {
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let m = region.alloc(ShmMutex::new(0u64)).unwrap();
    let mut guard = m.lock();
    let data: &mut u64 = &mut guard;
    let mut workers = Workers::new();
    workers
        .spawn(move || {
            *data += 1;
            0
        })
        .unwrap();
}
