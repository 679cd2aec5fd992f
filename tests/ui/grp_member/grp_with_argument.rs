use lockkit::grp::WeakGrpLock;
use lockkit::grp_member;

#[grp_member]
struct Tsx {
    #[grp(dialog)]
    dialog: WeakGrpLock,
}

fn main() {}
