use lockkit::grp_member;

#[grp_member]
struct Tsx {
    #[grp]
    dialog: u64,
}

fn main() {}
