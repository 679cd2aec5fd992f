// A forked worker must not take a guard along: the child would keep writing the data after
// the parent let the lock go and took it again.
use lockkit::workers::Workers;
use lockkit::{ShmMutex, ShmRegion};

fn main() {
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let m = Box::leak(Box::new(region.alloc(ShmMutex::new(0u64)).unwrap()));
    let mut guard = m.lock();
    let mut workers = Workers::new();
    workers
        .spawn(move || {
            *guard += 1;
            0
        })
        .unwrap();
}
