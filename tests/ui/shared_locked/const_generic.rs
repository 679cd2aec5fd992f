use lockkit::{shared_locked, GenLock};

#[shared_locked]
struct Ring<const N: usize> {
    lock: GenLock,
    #[guarded_by(lock)]
    slots: [u32; N],
}

fn main() {
    let r = Ring::<4>::new([0; 4]);
    r.lock_lock().slots[0] = 1;
}
