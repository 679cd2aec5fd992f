use lockkit::shared_locked;

#[shared_locked]
union Word {
    a: u32,
    b: f32,
}

fn main() {}
