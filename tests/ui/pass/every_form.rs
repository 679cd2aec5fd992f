//! Every form of the three macros, compiled together.

use std::sync::atomic::AtomicU32;

use lockkit::grp::{GrpLock, WeakGrpLock};
use lockkit::{grp_member, locked, shared_locked, GenLock, GenLockSet, ShmMutex, ShmRegion};

#[shared_locked]
pub struct Registrar {
    calls: GenLock,
    #[guarded_by(calls)]
    pub active: u64,
    stripes: GenLockSet<4>,
    #[striped_by(stripes)]
    per_user: [u32; 16],
    #[standalone]
    admin: GenLock,
    config: AtomicU32,
}

#[grp_member(on_destroy = finish)]
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

#[grp_member]
struct DropOnly {
    #[grp]
    group: WeakGrpLock,
    /// A strong reference to a group that is not this member's own.
    #[other_group]
    parent: Option<GrpLock>,
}

/// A generic member: a member when its type arguments are `Send + 'static`.
#[grp_member]
struct Holder<T> {
    #[grp]
    group: WeakGrpLock,
    value: T,
}

fn use_all(reg: &Registrar, set: &GenLockSet<4>) -> Result<u64, std::num::ParseIntError> {
    let m = ShmMutex::new(0u64);
    let a = GenLock::new();
    let group = GrpLock::new();
    let tsx = Tsx { dialog: WeakGrpLock::new(), retries: 0 }.join(&group);
    let _other = DropOnly {
        group: WeakGrpLock::new(),
        parent: Some(GrpLock::new()),
    }
    .join(&group);

    let held = Holder { group: WeakGrpLock::new(), value: 5u8 }.join(&group);
    locked!(h = held => { h.value += 1 });
    locked!(a => {});
    locked!(g = m => { *g += 1 });
    locked!(set[1] => {});
    locked!(a, reg.admin, set[0] => {});
    let _ = locked!(try g = m => { *g } else { 0 });
    locked!(try a => {} else {});
    locked!(group => {});
    locked!(g = group => { let _ = g; });
    locked!(t = tsx => { t.retries += 1 });
    reg.lock_calls().active += 1;
    *reg.lock_per_user(3) += 1;
    let n: u64 = locked!(g = m => { *g + "1".parse::<u64>()? });
    Ok(n)
}

fn main() {
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    let reg = region.alloc_zeroed::<Registrar>().unwrap();
    let set = GenLockSet::<4>::new();
    assert_eq!(use_all(&reg, &set), Ok(2));
    let _ = &reg.config;
}
