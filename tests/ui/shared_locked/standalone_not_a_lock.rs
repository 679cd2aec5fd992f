use lockkit::shared_locked;

#[shared_locked]
struct Table {
    #[standalone]
    hits: u64,
}

fn main() {}
