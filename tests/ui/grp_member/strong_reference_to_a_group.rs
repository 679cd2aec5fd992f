// A GrpLock kept beside the #[grp] field: if it is the member's own group, group and
// member keep each other alive and on_destroy never runs.
use lockkit::grp::{GrpLock, WeakGrpLock};
use lockkit::grp_member;

#[grp_member]
struct Transaction {
    #[grp]
    group: WeakGrpLock,
    keep_alive: Option<GrpLock>,
}

fn main() {
    let dialog = GrpLock::new();
    let t = Transaction {
        group: WeakGrpLock::new(),
        keep_alive: Some(dialog.clone()),
    };
    let _member = t.join(&dialog);
}
