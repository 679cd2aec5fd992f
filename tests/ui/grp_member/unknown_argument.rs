use lockkit::grp::WeakGrpLock;
use lockkit::grp_member;

#[grp_member(on_drop = finish)]
struct Tsx {
    #[grp]
    dialog: WeakGrpLock,
}

fn main() {}
