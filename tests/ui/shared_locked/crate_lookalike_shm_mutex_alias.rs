// A look-alike crate whose wrapper type is an alias that picks lockkit's own type for the
// argument a once-per-struct proof would use and its own wrapper for the field's: generated
// code proves the wrapper per field, with the field's own arguments, so this does not
// compile. (An adversarial review's case: it compiled, with two guards over one element, or
// a null reference from alloc_zeroed.)
// ADVERSARY (adv21b): the UI form of tests/adv2_mutex_alias.rs (must not compile; no .stderr: it compiles).
// ADVERSARY (adv21b), finding 1b: `wrappers_are_lockkits` proves only that
// `shim::ShmMutex<u8>` (default backend) is lockkit's `ShmMutex<u8>`; a look-alike crate
// makes `ShmMutex` a type alias through a projection: lockkit's for `(u8, Futex)` (what the
// proof asks), a `&'static lockkit::ShmMutex<Fields>` for the guarded fields. The struct's
// ShmSafe impl never asserts the wrapper (its LAYOUT probe falls back to a placeholder) and
// its ShmZeroable bounds name the fields as written, so the struct gets lockkit's real
// ShmSafe AND ShmZeroable while holding a reference: `alloc_zeroed` hands out a null
// `&'static`, and `lock_lock()` on it is a SIGSEGV in safe code.
// Reproduced 3/3 (deterministic). This test FAILS while the hole is open (the child that
// locks the zeroed struct dies of SIGSEGV).
#![forbid(unsafe_code)]

extern crate self as shim;

pub use lockkit::*;

pub trait PickMutex {
    type Out;
}
impl PickMutex for (u8, lockkit::raw::Futex) {
    type Out = lockkit::ShmMutex<u8>;
}
impl PickMutex for (TableLockFields, lockkit::raw::Futex) {
    type Out = &'static lockkit::ShmMutex<TableLockFields>;
}
// Shadows the glob's `ShmMutex`.
pub type ShmMutex<T, R = lockkit::raw::Futex> = <(T, R) as PickMutex>::Out;

#[lockkit::shared_locked(crate = "shim", no_new)]
pub struct Table {
    #[lock]
    lock: lockkit::GenLock,
    #[guarded_by(lock)]
    count: u64,
}

fn is_real_shm_safe<T: lockkit::ShmSafe>() {}
fn is_real_shm_zeroable<T: lockkit::ShmZeroable>() {}

fn mutex_alias_gives_shm_zeroable_to_a_reference() {
    // Compiles: lockkit's own traits for a struct holding a &'static.
    is_real_shm_safe::<Table>();
    is_real_shm_zeroable::<Table>();
    if std::env::var_os("ADV2_MUTEX_ALIAS_CHILD").is_some() {
        let region = lockkit::ShmRegion::anonymous(1 << 20).unwrap();
        let zeroed = region.alloc_zeroed::<Table>().unwrap();
        let g = zeroed.lock_lock(); // a null &'static ShmMutex: SIGSEGV
        println!("count {}", g.count);
        return;
    }
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "mutex_alias_gives_shm_zeroable_to_a_reference", "--nocapture"])
        .env("ADV2_MUTEX_ALIAS_CHILD", "1")
        .status()
        .unwrap();
    assert!(
        status.success(),
        "UNSOUND: locking an alloc_zeroed struct from safe code killed the process: {status:?}"
    );
}

fn main() {
    mutex_alias_gives_shm_zeroable_to_a_reference();
}
