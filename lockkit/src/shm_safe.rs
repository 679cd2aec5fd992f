//! Which types may live in shared memory.

use std::marker::PhantomData;
use std::sync::atomic::*;

/// A type that may be placed in shared memory and used by several processes at once.
///
/// Processes map a region at different addresses and run different copies of the program's
/// heap, so a value in shared memory must not hold anything that only means something in one
/// process: no `Box`, `String`, `Vec`, references, `Rc`/`Arc` or raw pointers. Links between
/// shared objects are [`ShmPtr`](crate::ShmPtr) offsets instead.
///
/// # Safety
/// Implementors promise that:
/// - the type holds no process-local pointer or handle (directly or in any field);
/// - a value is usable from any process that maps it, through `&Self` only (so it is `Sync`
///   and mutation goes through atomics or locks);
/// - the type has no drop glue that matters: shared objects are never dropped, only freed.
///
/// `#[shared_locked]` (in `lockkit-macros`) implements it for structs whose fields all are.
///
/// Types that hold process-local pointers do not implement it, so they cannot be allocated
/// in a region:
///
/// ```compile_fail
/// let region = lockkit::ShmRegion::anonymous(1 << 20).unwrap();
/// let b = region.alloc(String::from("lost in another process"));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot live in shared memory",
    label = "not `ShmSafe`: it may hold pointers that mean nothing in another process",
    note = "shared objects hold plain data, atomics, lockkit locks and ShmPtr links: use a \
            fixed-size array instead of String/Vec, ShmPtr instead of Box/references, and put \
            #[shared_locked] on your own plain-data structs"
)]
pub unsafe trait ShmSafe: Sync {}

/// A [`ShmSafe`] type for which all-zero bytes are a valid value (an unlocked lock, a zero
/// counter, a null [`ShmPtr`](crate::ShmPtr)), so it can be allocated zeroed.
///
/// # Safety
/// The all-zero bit pattern must be a valid value of the type.
pub unsafe trait ShmZeroable: ShmSafe {}

macro_rules! shm_plain {
    ($($t:ty),* $(,)?) => {
        $(
            // SAFETY: a plain value with no pointers; zero is a valid value.
            unsafe impl ShmSafe for $t {}
            // SAFETY: zero is a valid value of this type.
            unsafe impl ShmZeroable for $t {}
        )*
    };
}

shm_plain!(
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    bool,
    char,
    (),
    AtomicBool,
    AtomicU8,
    AtomicU16,
    AtomicU32,
    AtomicU64,
    AtomicUsize,
    AtomicI8,
    AtomicI16,
    AtomicI32,
    AtomicI64,
    AtomicIsize,
);

// SAFETY: an array holds its elements inline; zero bytes for the array are zero elements.
unsafe impl<T: ShmSafe, const N: usize> ShmSafe for [T; N] {}
// SAFETY: as above.
unsafe impl<T: ShmZeroable, const N: usize> ShmZeroable for [T; N] {}
// SAFETY: PhantomData holds nothing.
unsafe impl<T: ?Sized + Sync> ShmSafe for PhantomData<T> {}
// SAFETY: PhantomData holds nothing.
unsafe impl<T: ?Sized + Sync> ShmZeroable for PhantomData<T> {}

macro_rules! shm_tuple {
    ($($name:ident)+) => {
        // SAFETY: a tuple holds its fields inline.
        unsafe impl<$($name: ShmSafe),+> ShmSafe for ($($name,)+) {}
        // SAFETY: zero bytes for the tuple are zero bytes for each field.
        unsafe impl<$($name: ShmZeroable),+> ShmZeroable for ($($name,)+) {}
    };
}

shm_tuple!(A);
shm_tuple!(A B);
shm_tuple!(A B C);
shm_tuple!(A B C D);
shm_tuple!(A B C D E);
shm_tuple!(A B C D E F);
shm_tuple!(A B C D E F G);
shm_tuple!(A B C D E F G H);

#[cfg(test)]
mod tests {
    use super::*;

    fn is_shm<T: ShmZeroable>() {}

    #[test]
    fn nested_plain_data_is_shm_safe() {
        is_shm::<[(u32, AtomicU64, [bool; 3]); 4]>();
        is_shm::<crate::GenLock>();
        is_shm::<crate::ShmMutex<[u64; 8]>>();
        is_shm::<crate::GenLockSet<4>>();
        is_shm::<crate::ShmPtr<crate::GenLock>>();
    }
}
