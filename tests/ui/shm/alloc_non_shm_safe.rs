use lockkit::ShmRegion;

fn main() {
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    let _names = region.alloc(vec![String::from("alice")]);
}
