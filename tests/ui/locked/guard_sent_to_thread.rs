use lockkit::GenLock;

static LOCK: GenLock = GenLock::new();

fn main() {
    let guard = LOCK.lock();
    // The thread that took a lock releases it: guards do not cross threads.
    std::thread::spawn(move || drop(guard));
}
