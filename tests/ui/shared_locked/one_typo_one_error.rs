use lockkit::{shared_locked, GenLock, ShmRegion};

#[shared_locked]
pub struct Registrar {
    calls: GenLock,
    #[guarded_by(calsl)]
    active: u64,
    #[guarded_by(calls)]
    last_code: u16,
}

fn main() {
    // One typo, one error: the uses below must not add "no method `lock_calls`" or
    // "`Registrar: ShmZeroable` is not satisfied".
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    let reg = region.alloc_zeroed::<Registrar>().unwrap();
    reg.lock_calls().active += 1;
    reg.lock_calls().last_code = 200;
    let _ = Registrar::new(0, 0);
}
