use lockkit::grp::WeakGrpLock;
use lockkit::grp_member;

#[grp_member(on_destroy = finish, on_destroy = finish)]
struct Tsx {
    #[grp]
    dialog: WeakGrpLock,
}

impl Tsx {
    fn finish(&mut self) {}
}

fn main() {}
