// A user type standing in for a lock set: the striped accessors take the set through its
// `Deref` on every access, so a type that handed out another set each time would give two
// guards of one element. Only lockkit's own GenLockSet is a lock set.
use std::ops::Deref;

use lockkit::{shared_locked, GenLockSet, LockSet, ShmSafe};

#[derive(ShmSafe)]
#[repr(C)]
pub struct Flip {
    a: GenLockSet<1>,
    b: GenLockSet<1>,
}

impl Deref for Flip {
    type Target = LockSet;
    fn deref(&self) -> &LockSet {
        &self.a
    }
}

impl Flip {
    pub const fn with_backend() -> Self {
        Flip {
            a: GenLockSet::new(),
            b: GenLockSet::new(),
        }
    }
}

impl lockkit::__private::LockKind for Flip {
    type Raw = lockkit::raw::Futex;
}
impl lockkit::__private::LockSetKind for Flip {
    const LEN: usize = 1;
}

#[shared_locked]
pub struct Table {
    #[lock_set]
    stripes: Flip,
    #[striped_by(stripes)]
    cells: [u64; 1],
}

fn main() {}
