use lockkit::grp_member;

#[grp_member]
enum State {
    Idle,
}

fn main() {}
