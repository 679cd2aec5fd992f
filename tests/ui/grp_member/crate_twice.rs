use lockkit::grp::WeakGrpLock;
use lockkit::grp_member;

#[grp_member(crate = "lockkit", crate = "lockkit")]
struct Tsx {
    #[grp]
    dialog: WeakGrpLock,
}

fn main() {}
