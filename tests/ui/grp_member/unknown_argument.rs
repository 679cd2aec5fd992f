use lockkit::grp::{GrpLock, WeakGrpLock};
use lockkit::grp_member;

#[grp_member(on_drop = finish)]
struct Tsx {
    #[grp]
    dialog: WeakGrpLock,
    retries: u32,
}

fn main() {
    // After the error, `join` and the member's lock still resolve: one error, no cascade.
    let group = GrpLock::new();
    let tsx = Tsx { dialog: WeakGrpLock::new(), retries: 0 }.join(&group);
    tsx.lock().retries += 1;
}
