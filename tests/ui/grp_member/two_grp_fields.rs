use lockkit::grp::WeakGrpLock;
use lockkit::grp_member;

#[grp_member]
struct Transaction {
    #[grp]
    dialog: WeakGrpLock,
    #[grp]
    call: WeakGrpLock,
}

fn main() {}
