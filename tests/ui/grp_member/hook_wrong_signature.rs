use lockkit::grp::WeakGrpLock;
use lockkit::grp_member;

#[grp_member(on_destroy = finish)]
struct Transaction {
    #[grp]
    dialog: WeakGrpLock,
}

impl Transaction {
    fn finish(self, reason: &str) {
        let _ = (self, reason);
    }
}

fn main() {}
