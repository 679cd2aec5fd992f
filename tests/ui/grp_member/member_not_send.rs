use lockkit::grp::WeakGrpLock;
use lockkit::grp_member;
use std::rc::Rc;

#[grp_member]
struct Tsx {
    #[grp]
    dialog: WeakGrpLock,
    local: Rc<u32>,
}

fn main() {}
