use lockkit::grp::WeakGrpLock;
use lockkit::grp_member;

#[grp_member]
struct Tsx<'a> {
    #[grp]
    group: WeakGrpLock,
    name: &'a str,
}

fn main() {}
