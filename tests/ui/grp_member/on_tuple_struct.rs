use lockkit::grp::WeakGrpLock;
use lockkit::grp_member;

#[grp_member]
struct Tsx(WeakGrpLock);

fn main() {}
