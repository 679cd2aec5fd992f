//! Every macro form, with lockkit known as `lk` and std's names shadowed by user types.

#![allow(non_camel_case_types, dead_code)]

use ::std::sync::atomic::{AtomicU32, Ordering};

use lk::grp::{GrpLock, WeakGrpLock};
use lk::{grp_member, locked, shared_locked, GenLock, GenLockSet, RwLock, ShmMutex, ShmRegion};

// User types with the names of std items the generated code uses: generated code must
// write the full paths.
struct usize;
struct Option;
struct Some;
struct None;
struct Duration;
struct Result;
mod core {}
mod std {}

#[shared_locked(crate = "lk")]
pub struct Registrar {
    calls: GenLock,
    #[guarded_by(calls)]
    active: u64,
    stripes: GenLockSet<4>,
    #[striped_by(stripes)]
    per_user: [u32; 16],
    #[standalone]
    admin: GenLock,
    limit: AtomicU32,
}

#[grp_member(crate = "lk", on_destroy = finish)]
struct Tsx {
    #[grp]
    dialog: WeakGrpLock,
    retries: u32,
}

impl Tsx {
    fn finish(&mut self) {
        self.retries = 0;
    }
}

fn main() {
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    let reg = region.alloc_zeroed::<Registrar>().unwrap();
    reg.lock_calls().active += 1;
    *reg.lock_per_user(3) += 2;
    assert!(reg.try_lock_per_user_for(3, ::core::time::Duration::from_millis(1)).is_some());
    reg.limit.store(1, Ordering::Relaxed);

    let m = ShmMutex::new(5u64);
    let rw = RwLock::new(1u32);
    let group = GrpLock::new();
    let tsx = Tsx { dialog: WeakGrpLock::new(), retries: 0 }.join(&group);
    locked!(crate = "lk"; g = m => { *g += 1 });
    locked!(crate = lk; m => {});
    locked!(crate = "lk"; a = reg.admin, c = reg.calls => {
        let _ = a;
        c.active += 1;
    });
    locked!(crate = "lk"; write w = rw => { *w += 1 });
    let r = locked!(crate = "lk"; try read r = rw => { *r } else { 0 });
    let t = locked!(crate = "lk"; try_for(::core::time::Duration::from_millis(5)) g = m => { *g } else { 0 });
    locked!(crate = "lk"; t = tsx => { t.retries += 1 });
    assert_eq!(reg.lock_calls().active, 2);
    assert_eq!((r, t), (2, 6));
    println!("renamed crate: OK");
}
