//! Which types may live in shared memory.

use std::marker::PhantomData;
use std::mem::offset_of;
use std::sync::atomic::*;

use crate::layout::{FieldLayout, Scalar, Shape, TypeLayout};

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
/// - the type has no drop glue that matters: shared objects are never dropped, only freed;
/// - [`LAYOUT`](ShmSafe::LAYOUT) describes the type truly: size, alignment and every field at
///   its real offset (the allocator and `lookup` trust it to tell types apart).
///
/// `#[derive(ShmSafe)]` implements it for `#[repr(C)]` structs whose fields all are and for
/// fieldless enums with an integer `repr`; `#[shared_locked]` for the structs it lays out.
/// `Option<T>` is `ShmSafe` when `T` is.
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
    note = "shared objects hold plain data, atomics, lockkit locks and ShmPtr links: use \
            ShmStr<N>/ShmBytes<N> or a fixed-size array instead of String/Vec, ShmPtr instead \
            of Box/references; put \
            #[derive(ShmSafe)] on your own #[repr(C)] structs and #[repr(u8)] enums, or \
            #[shared_locked] on structs with locks"
)]
pub unsafe trait ShmSafe: Sync {
    /// What the type is made of, for telling layouts apart across programs (see
    /// [`layout`](crate::layout)).
    const LAYOUT: &'static TypeLayout;
}

/// A [`ShmSafe`] type for which all-zero bytes are a valid value (an unlocked lock, a zero
/// counter, a null [`ShmPtr`](crate::ShmPtr)), so it can be allocated zeroed.
///
/// # Safety
/// The all-zero bit pattern must be a valid value of the type.
pub unsafe trait ShmZeroable: ShmSafe {}

macro_rules! shm_plain {
    ($($t:ty => $shape:expr),* $(,)?) => {
        $(
            // SAFETY: a plain value with no pointers; zero is a valid value.
            unsafe impl ShmSafe for $t {
                const LAYOUT: &'static TypeLayout =
                    &TypeLayout::sized::<$t>(stringify!($t), $shape);
            }
            // SAFETY: zero is a valid value of this type.
            unsafe impl ShmZeroable for $t {}
        )*
    };
}

shm_plain!(
    u8 => Shape::Scalar(Scalar::U8),
    u16 => Shape::Scalar(Scalar::U16),
    u32 => Shape::Scalar(Scalar::U32),
    u64 => Shape::Scalar(Scalar::U64),
    u128 => Shape::Scalar(Scalar::U128),
    usize => Shape::Scalar(Scalar::Usize),
    i8 => Shape::Scalar(Scalar::I8),
    i16 => Shape::Scalar(Scalar::I16),
    i32 => Shape::Scalar(Scalar::I32),
    i64 => Shape::Scalar(Scalar::I64),
    i128 => Shape::Scalar(Scalar::I128),
    isize => Shape::Scalar(Scalar::Isize),
    f32 => Shape::Scalar(Scalar::F32),
    f64 => Shape::Scalar(Scalar::F64),
    bool => Shape::Scalar(Scalar::Bool),
    char => Shape::Scalar(Scalar::Char),
    () => Shape::Scalar(Scalar::Unit),
    AtomicBool => Shape::Atomic(Scalar::Bool),
    AtomicU8 => Shape::Atomic(Scalar::U8),
    AtomicU16 => Shape::Atomic(Scalar::U16),
    AtomicU32 => Shape::Atomic(Scalar::U32),
    AtomicU64 => Shape::Atomic(Scalar::U64),
    AtomicUsize => Shape::Atomic(Scalar::Usize),
    AtomicI8 => Shape::Atomic(Scalar::I8),
    AtomicI16 => Shape::Atomic(Scalar::I16),
    AtomicI32 => Shape::Atomic(Scalar::I32),
    AtomicI64 => Shape::Atomic(Scalar::I64),
    AtomicIsize => Shape::Atomic(Scalar::Isize),
);

// SAFETY: an array holds its elements inline; zero bytes for the array are zero elements.
unsafe impl<T: ShmSafe, const N: usize> ShmSafe for [T; N] {
    const LAYOUT: &'static TypeLayout = &TypeLayout::sized::<[T; N]>(
        "array",
        Shape::Array {
            elem: T::LAYOUT,
            len: N,
        },
    );
}
// SAFETY: as above.
unsafe impl<T: ShmZeroable, const N: usize> ShmZeroable for [T; N] {}
// SAFETY: PhantomData holds nothing.
unsafe impl<T: ?Sized + Sync> ShmSafe for PhantomData<T> {
    const LAYOUT: &'static TypeLayout = &TypeLayout::sized::<Self>("PhantomData", Shape::Empty);
}

// SAFETY: an Option holds its value inline (and a discriminant, or uses a niche of the
// value); it is used through `&Self` like the value. Zero bytes are not always `None` (they
// are `Some(false)` for `Option<bool>`), so it is not ShmZeroable. Its layout is the
// compiler's choice: the size and the payload's layout are compared, and a program built by
// another compiler that lays it out otherwise is the case `ShmSafe` cannot see.
unsafe impl<T: ShmSafe> ShmSafe for Option<T> {
    const LAYOUT: &'static TypeLayout =
        &TypeLayout::sized::<Self>("Option", Shape::Option { some: T::LAYOUT });
}
// SAFETY: PhantomData holds nothing.
unsafe impl<T: ?Sized + Sync> ShmZeroable for PhantomData<T> {}

macro_rules! shm_tuple {
    ($($name:ident $idx:tt)+) => {
        // SAFETY: a tuple holds its fields inline; LAYOUT records the offsets this compiler
        // gave them (tuples are repr(Rust)), so a program that lays them out otherwise is
        // told apart.
        unsafe impl<$($name: ShmSafe),+> ShmSafe for ($($name,)+) {
            const LAYOUT: &'static TypeLayout = &TypeLayout::of_fields::<Self>(
                "tuple",
                &[$(FieldLayout {
                    name: stringify!($idx),
                    offset: offset_of!(Self, $idx),
                    layout: $name::LAYOUT,
                }),+],
            );
        }
        // SAFETY: zero bytes for the tuple are zero bytes for each field.
        unsafe impl<$($name: ShmZeroable),+> ShmZeroable for ($($name,)+) {}
    };
}

shm_tuple!(A 0);
shm_tuple!(A 0 B 1);
shm_tuple!(A 0 B 1 C 2);
shm_tuple!(A 0 B 1 C 2 D 3);
shm_tuple!(A 0 B 1 C 2 D 3 E 4);
shm_tuple!(A 0 B 1 C 2 D 3 E 4 F 5);
shm_tuple!(A 0 B 1 C 2 D 3 E 4 F 5 G 6);
shm_tuple!(A 0 B 1 C 2 D 3 E 4 F 5 G 6 H 7);

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
