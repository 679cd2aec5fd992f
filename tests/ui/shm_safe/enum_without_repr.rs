#[derive(lockkit::ShmSafe)]
enum State {
    Idle,
    Busy,
}

fn main() {}
