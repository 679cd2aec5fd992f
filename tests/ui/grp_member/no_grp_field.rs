use lockkit::grp::WeakGrpLock;
use lockkit::grp_member;

#[grp_member]
struct Transaction {
    dialog: WeakGrpLock,
    retries: u32,
}

fn main() {}
