use lockkit::shared_locked;

#[shared_locked]
struct Table {
    stripes: u64,
    #[striped_by(stripes)]
    cells: [u32; 16],
}

fn main() {}
