use lockkit::shared_locked;

#[shared_locked]
enum State {
    Idle,
    Busy(u32),
}

fn main() {}
