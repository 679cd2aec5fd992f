use lockkit::locked;

fn main() {
    let count = 5u32;
    locked!(count => {});
}
