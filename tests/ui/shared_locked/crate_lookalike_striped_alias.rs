// A look-alike crate whose wrapper type is an alias that picks lockkit's own type for the
// argument a once-per-struct proof would use and its own wrapper for the field's: generated
// code proves the wrapper per field, with the field's own arguments, so this does not
// compile. (An adversarial review's case: it compiled, with two guards over one element, or
// a null reference from alloc_zeroed.)
// ADVERSARY (adv21b): the UI form of tests/adv2_striped_alias.rs (must not compile; no .stderr: it compiles).
// ADVERSARY (adv21b), finding 1a: `wrappers_are_lockkits` proves only that
// `shim::__private::Striped<()>` is lockkit's `Striped<()>`; a look-alike crate makes
// `Striped` a type alias through a projection, lockkit's for `()` and its own wrapper (a
// `&'static` to one shared `Striped`) for the real field type. Result, from safe code:
// lockkit's real ShmSafe + ShmZeroable for a struct holding a `&'static`, two live
// StripeGuards (two `&mut`) over one element, and `alloc_zeroed` making a null reference.
// Reproduced 3/3 (deterministic). This test FAILS while the hole is open (it asserts the
// aliasing does not happen); the compile-time part is the real finding.
#![forbid(unsafe_code)]

extern crate self as shim;

pub use lockkit::*;

pub trait PickStriped {
    type Out;
}
impl PickStriped for () {
    type Out = lockkit::__private::Striped<()>;
}
impl PickStriped for [u64; 4] {
    type Out = EvilStriped<[u64; 4]>;
}

pub struct EvilStriped<T: 'static>(pub &'static lockkit::__private::Striped<T>);
impl<T> std::ops::Deref for EvilStriped<T> {
    type Target = lockkit::__private::Striped<T>;
    fn deref(&self) -> &Self::Target {
        self.0
    }
}

pub mod __private {
    pub use lockkit::__private::*;
    // Shadows the glob: lockkit's Striped for `()` (what the proof asks), ours otherwise.
    pub type Striped<T> = <T as super::PickStriped>::Out;
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
        cells: EvilStriped(&SHARED_CELLS),
    }
}

fn is_real_shm_safe<T: lockkit::ShmSafe>() {}
fn is_real_shm_zeroable<T: lockkit::ShmZeroable>() {}

fn striped_alias_gives_two_guards_over_one_element() {
    // (a) compiles: lockkit's own traits for a struct holding a &'static.
    is_real_shm_safe::<Table>();
    is_real_shm_zeroable::<Table>();
    let region = lockkit::ShmRegion::anonymous(1 << 20).unwrap();
    let in_shm = region.alloc(table()).unwrap();
    // (b) two live guards (each DerefMut) over one element.
    let t1 = table();
    let g1 = t1.lock_cells(0);
    let g2 = in_shm.lock_cells(0);
    let (p1, p2): (*const u64, *const u64) = (&*g1, &*g2);
    assert_ne!(p1, p2, "UNSOUND: two live StripeGuards lend the same element");
}

fn main() {
    striped_alias_gives_two_guards_over_one_element();
}
