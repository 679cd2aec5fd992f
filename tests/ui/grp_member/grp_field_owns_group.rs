use lockkit::grp::GrpLock;
use lockkit::grp_member;

#[grp_member]
struct Transaction {
    #[grp]
    dialog: GrpLock,
}

fn main() {}
