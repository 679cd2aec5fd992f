use lockkit::grp::{GrpLock, WeakGrpLock};
use lockkit::grp_member;

#[grp_member]
struct Tsx {
    #[grp]
    dialog: WeakGrpLock,
}

fn main() {
    let group = GrpLock::new();
    let tsx = Box::leak(Box::new(Tsx { dialog: WeakGrpLock::new() }.join(&group)));
    let guard = tsx.lock();
    std::thread::spawn(move || drop(guard));
}
