use lockkit::grp::GrpLock;
use lockkit::locked;
use std::time::Duration;

fn main() {
    let group = GrpLock::new();
    locked!(try_for(Duration::from_millis(5)) group => {} else {});
}
