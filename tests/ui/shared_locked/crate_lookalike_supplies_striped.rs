// `#[shared_locked(crate = "shim")]` where the look-alike crate supplies its own `Striped`
// (the wrapper a striped field is stored in; everything else is lockkit's, `Checked`
// included) must not compile: generated code proves the wrapper is lockkit's. An
// adversarial review had it compile, with lockkit's real ShmSafe and ShmZeroable for a
// struct holding a `&'static`, two StripeGuards over one element, and a null reference from
// `alloc_zeroed`.
#![forbid(unsafe_code)]

extern crate self as shim;

pub use lockkit::*;

pub mod __private {
    // Everything real (Checked, LockKind, ...) ...
    pub use lockkit::__private::*;

    // ... except `Striped`: an explicit item shadows the glob.
    pub struct Striped<T: 'static>(pub &'static lockkit::__private::Striped<T>);

    impl<T> std::ops::Deref for Striped<T> {
        type Target = lockkit::__private::Striped<T>;
        fn deref(&self) -> &Self::Target {
            self.0
        }
    }
}

static SHARED_CELLS: lockkit::__private::Striped<[u64; 4]> =
    lockkit::__private::Striped::new([0; 4]);

#[lockkit::shared_locked(crate = "shim", no_new)]
pub struct Table {
    stripes: lockkit::GenLockSet<2>,
    #[striped_by(stripes)]
    cells: [u64; 4],
}

fn table() -> Table {
    Table {
        stripes: lockkit::GenLockSet::new(),
        cells: __private::Striped(&SHARED_CELLS),
    }
}

fn is_real_shm_safe<T: lockkit::ShmSafe>() {}
fn is_real_shm_zeroable<T: lockkit::ShmZeroable>() {}

fn main() {
    // (a)
    is_real_shm_safe::<Table>();
    is_real_shm_zeroable::<Table>();
    let region = lockkit::ShmRegion::anonymous(1 << 20).unwrap();
    let in_shm = region.alloc(table()).unwrap();
    // (b)
    let t1 = table();
    let mut g1 = t1.lock_cells(0);
    let mut g2 = in_shm.lock_cells(0);
    let (p1, p2): (*const u64, *const u64) = (&*g1, &*g2);
    assert_eq!(p1, p2, "two live StripeGuards lend the same element");
    *g1 = 7;
    *g2 += 1;
    drop((g1, g2));
    // (c)
    let zeroed = region.alloc_zeroed::<Table>().unwrap();
    println!("{}", *zeroed.lock_cells(1)); // SIGSEGV
}
