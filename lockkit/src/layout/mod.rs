//! Structural descriptions of the types that live in shared memory, and the fingerprints
//! that identify them.
//!
//! Two programs that share a region must agree on the layout of every object they both
//! touch. A type's *name* says little about that: two versions of a crate can keep a path
//! and change a field, and the same source compiled into two binaries gets two paths. So
//! every [`ShmSafe`](crate::ShmSafe) type carries a [`TypeLayout`]: its size and alignment,
//! and what it is made of (fields by name and offset, array elements and length, enum
//! variants and their values, primitives by kind), recursively. Its
//! [`fingerprint`](TypeLayout::fingerprint), computed at compile time, is the type tag an
//! allocation carries and a named root is published under. Names of types and their paths
//! are left out of it; names of fields are in.
//!
//! When a lookup finds another layout, the region's description of its type (stored at
//! [`publish`](crate::ShmRegion::publish)) is compared with this program's, and the error
//! names the first field that differs:
//!
//! ```
//! use lockkit::{Error, ShmRegion, ShmSafe};
//!
//! mod v1 {
//!     #[derive(lockkit::ShmSafe)]
//!     #[repr(C)]
//!     pub struct Flags { pub enabled: bool, pub level: u8 }
//! }
//! mod v2 {
//!     #[derive(lockkit::ShmSafe)]
//!     #[repr(C)]
//!     pub struct Flags { pub enabled: u32, pub level: u8 }
//! }
//!
//! let region = ShmRegion::anonymous(1 << 16)?;
//! region.publish("flags", &region.alloc(v1::Flags { enabled: true, level: 3 })?)?;
//! let err = region.lookup::<v2::Flags>("flags").err().unwrap();
//! assert!(matches!(err, Error::TypeMismatch { .. }));
//! assert!(err.to_string().contains("field `enabled` at offset 0: u32 here, bool in the region"));
//! # Ok::<(), lockkit::Error>(())
//! ```
//!
//! Layouts are written by `#[derive(ShmSafe)]` and `#[shared_locked]`; a hand-written
//! `ShmSafe` impl writes its own, usually with [`TypeLayout::of_fields`] or, for a type whose
//! inside is private, [`TypeLayout::opaque`].

mod describe;
mod digest;

pub(crate) use describe::{
    decode, difference, encode, printable, Line, Undescribable, MAX_DESCRIPTION,
};

use std::mem::{align_of, size_of};

/// The layout of a type that lives in shared memory (see the [module docs](self)).
#[derive(Debug)]
pub struct TypeLayout {
    /// The type's name as written where it is defined, for messages only: not part of the
    /// fingerprint.
    pub name: &'static str,
    /// `size_of` the type.
    pub size: usize,
    /// `align_of` the type.
    pub align: usize,
    /// What the type is made of.
    pub shape: Shape,
    /// [`TypeLayout::digest`], computed by the constructors from this type's own node and
    /// its parts' digests (so each type is hashed once, at compile time, however deep).
    digest: [u8; 32],
}

/// What a [`TypeLayout`] is made of.
#[derive(Debug)]
pub enum Shape {
    /// A primitive number, `bool`, `char` or `()`.
    Scalar(Scalar),
    /// A `std::sync::atomic` type over a primitive.
    Atomic(Scalar),
    /// `[elem; len]`.
    Array {
        /// The element's layout.
        elem: &'static TypeLayout,
        /// The number of elements.
        len: usize,
    },
    /// A struct or tuple: its fields at their offsets (tuple fields are named `0`, `1`, ..).
    Struct {
        /// The fields, in declaration order.
        fields: &'static [FieldLayout],
    },
    /// A fieldless enum with an explicit integer representation.
    Enum {
        /// The representation (`u8`, `u16`, `u32`, ..).
        repr: Scalar,
        /// The variants and their values.
        variants: &'static [VariantLayout],
    },
    /// `Option<some>`.
    Option {
        /// The layout of the value when it is `Some`.
        some: &'static TypeLayout,
    },
    /// A [`ShmPtr`](crate::ShmPtr) to a value of the given size and alignment (the target's
    /// own layout is checked when the pointer is resolved).
    Ptr {
        /// `size_of` the target.
        target_size: usize,
        /// `align_of` the target.
        target_align: usize,
    },
    /// A type whose inside is private (lockkit's locks): identified by `id` and `param`
    /// (the backend), which must name its layout and protocol exactly.
    Opaque {
        /// What the type is, with a version: `"lockkit::GenLock/1"`.
        id: &'static str,
        /// What it is generic over, if anything (a lock's backend): `"futex"`.
        param: &'static str,
    },
    /// Zero-sized and holding nothing (`PhantomData`).
    Empty,
}

/// A primitive kind.
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    U8,
    U16,
    U32,
    U64,
    U128,
    Usize,
    I8,
    I16,
    I32,
    I64,
    I128,
    Isize,
    F32,
    F64,
    Bool,
    Char,
    Unit,
}

impl Scalar {
    /// The kind as Rust writes it.
    pub const fn name(self) -> &'static str {
        match self {
            Scalar::U8 => "u8",
            Scalar::U16 => "u16",
            Scalar::U32 => "u32",
            Scalar::U64 => "u64",
            Scalar::U128 => "u128",
            Scalar::Usize => "usize",
            Scalar::I8 => "i8",
            Scalar::I16 => "i16",
            Scalar::I32 => "i32",
            Scalar::I64 => "i64",
            Scalar::I128 => "i128",
            Scalar::Isize => "isize",
            Scalar::F32 => "f32",
            Scalar::F64 => "f64",
            Scalar::Bool => "bool",
            Scalar::Char => "char",
            Scalar::Unit => "()",
        }
    }
}

/// A field of a [`Shape::Struct`].
#[derive(Debug)]
pub struct FieldLayout {
    /// The field's name (`0`, `1`, .. in a tuple).
    pub name: &'static str,
    /// `offset_of!` the field.
    pub offset: usize,
    /// The field's type's layout.
    pub layout: &'static TypeLayout,
}

/// A variant of a [`Shape::Enum`].
#[derive(Debug)]
pub struct VariantLayout {
    /// The variant's name.
    pub name: &'static str,
    /// Its discriminant.
    pub value: i128,
}

/// The layout of [`FieldLayout::interior_mutable`]'s marker.
const INTERIOR_MUTABLE: TypeLayout = TypeLayout::sized::<()>("interior mutability", Shape::Empty);

/// The element of [`TypeLayout::lock_set_at`]'s array.
const LOCK_SET_AT: TypeLayout = TypeLayout::sized::<()>("byte", Shape::Empty);

impl FieldLayout {
    /// A marker for a hand-written layout: the bytes at `offset` are written while shared
    /// references to the value exist (data behind a lock's `UnsafeCell`). No Rust field can
    /// have its name, so a plain struct of the same fields (which lends `&T` to those bytes
    /// freely) never has the same fingerprint as the lock that guards them.
    pub const fn interior_mutable(offset: usize) -> FieldLayout {
        FieldLayout {
            name: "#interior-mutable",
            offset,
            layout: &INTERIOR_MUTABLE,
        }
    }
}

impl TypeLayout {
    /// The layout of a `#[striped_by]` marker: the lock set that stripes a field lies
    /// `set_offset` bytes into the same struct. `#[shared_locked]` lists one such marker,
    /// named `#striped-by` (no Rust field can have that name), at each striped field's
    /// offset, so two structs whose fields differ only in which set stripes a field have
    /// different layouts: each would take another lock for the same element. (An
    /// adversarial review had two such structs share a digest, and two guards lend `&mut`
    /// to one element.) The offset is the length of an array of zero-sized elements, which
    /// every layout comparison and digest already covers.
    pub const fn lock_set_at(set_offset: usize) -> TypeLayout {
        TypeLayout::sized::<()>(
            "lock set at offset",
            Shape::Array {
                elem: &LOCK_SET_AT,
                len: set_offset,
            },
        )
    }

    /// The layout of a primitive `T` of kind `kind`.
    pub const fn scalar<T>(kind: Scalar) -> TypeLayout {
        TypeLayout::sized::<T>(kind.name(), Shape::Scalar(kind))
    }

    /// A layout for `T` with the given name and shape, and `T`'s size and alignment.
    pub const fn sized<T>(name: &'static str, shape: Shape) -> TypeLayout {
        let (size, align) = (size_of::<T>(), align_of::<T>());
        let digest = Walk(digest::Sha256::new())
            .node(size, align, &shape)
            .0
            .finish();
        TypeLayout {
            name,
            size,
            align,
            shape,
            digest,
        }
    }

    /// The layout of a struct `T` made of `fields` (listed with `offset_of!`).
    pub const fn of_fields<T>(name: &'static str, fields: &'static [FieldLayout]) -> TypeLayout {
        TypeLayout::sized::<T>(name, Shape::Struct { fields })
    }

    /// The layout of a type whose inside is private, identified by `id` (which should carry a
    /// version that changes whenever the type's layout or protocol does) and `param`.
    pub const fn opaque<T>(id: &'static str, param: &'static str) -> TypeLayout {
        TypeLayout::sized::<T>(id, Shape::Opaque { id, param })
    }

    /// The digest: SHA-256 of the size, alignment and shape, with field and variant names but
    /// without type names, each part entering by its own digest (a hash tree). Equal layouts have equal digests whatever crate
    /// or path their types come from; two different layouts with one digest would be a
    /// SHA-256 collision, which nobody can find on purpose.
    pub const fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// The fingerprint: the digest's first 64 bits, the type's tag in a block's header. A
    /// region keeps, for each tag, the digest and the description of the one layout it was
    /// registered for, and refuses any other layout under that tag (a 64-bit prefix can be
    /// made to collide with enough work; the full digest and the description cannot).
    pub const fn fingerprint(&self) -> u64 {
        let d = self.digest();
        u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
    }
}

/// A layout fed to the digest, in a canonical order (usable in `const`).
#[derive(Clone, Copy)]
struct Walk(digest::Sha256);

impl Walk {
    const fn byte(self, b: u8) -> Walk {
        Walk(self.0.byte(b))
    }

    const fn u64(self, v: u64) -> Walk {
        Walk(self.0.bytes(&v.to_le_bytes()))
    }

    /// A string, with its length first so that concatenations cannot collide.
    const fn str(self, s: &str) -> Walk {
        Walk(self.u64(s.len() as u64).0.bytes(s.as_bytes()))
    }

    /// One layout node: its size, alignment and shape, each part by its digest.
    const fn node(mut self, size: usize, align: usize, shape: &Shape) -> Walk {
        self = self.u64(size as u64).u64(align as u64);
        match shape {
            Shape::Scalar(k) => self.byte(1).str(k.name()),
            Shape::Atomic(k) => self.byte(2).str(k.name()),
            Shape::Array { elem, len } => self.byte(3).u64(*len as u64).part(elem),
            Shape::Struct { fields } => {
                self = self.byte(4).u64(fields.len() as u64);
                let mut i = 0;
                while i < fields.len() {
                    let f = &fields[i];
                    self = self.str(f.name).u64(f.offset as u64).part(f.layout);
                    i += 1;
                }
                self
            }
            Shape::Enum { repr, variants } => {
                self = self.byte(5).str(repr.name()).u64(variants.len() as u64);
                let mut i = 0;
                while i < variants.len() {
                    let v = &variants[i];
                    self = self
                        .str(v.name)
                        .u64(v.value as u64)
                        .u64((v.value >> 64) as u64);
                    i += 1;
                }
                self
            }
            Shape::Option { some } => self.byte(6).part(some),
            Shape::Ptr {
                target_size,
                target_align,
            } => self
                .byte(7)
                .u64(*target_size as u64)
                .u64(*target_align as u64),
            Shape::Opaque { id, param } => self.byte(8).str(id).str(param),
            Shape::Empty => self.byte(9),
        }
    }

    /// A part, by its digest.
    const fn part(self, l: &TypeLayout) -> Walk {
        Walk(self.0.bytes(&l.digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ShmSafe;

    #[test]
    fn equal_shapes_have_equal_fingerprints_and_any_change_shows() {
        let fp = |l: &TypeLayout| l.fingerprint();
        assert_eq!(fp(u32::LAYOUT), fp(u32::LAYOUT));
        assert_ne!(fp(u32::LAYOUT), fp(i32::LAYOUT), "same size, other kind");
        assert_ne!(fp(u32::LAYOUT), fp(f32::LAYOUT));
        assert_ne!(
            fp(<[u8; 4]>::LAYOUT),
            fp(u32::LAYOUT),
            "same size and a different shape"
        );
        assert_ne!(fp(<[u8; 4]>::LAYOUT), fp(<[u8; 5]>::LAYOUT));
        assert_ne!(fp(<(u8, u32)>::LAYOUT), fp(<(u32, u8)>::LAYOUT));
        assert_ne!(fp(<Option<u32>>::LAYOUT), fp(<Option<i32>>::LAYOUT));
        assert_ne!(
            fp(crate::GenLock::<crate::raw::Futex>::LAYOUT),
            fp(crate::GenLock::<crate::raw::Spin>::LAYOUT),
            "the backend is part of a lock's identity"
        );
    }

    #[test]
    fn tuple_fields_carry_their_real_offsets() {
        let Shape::Struct { fields } = <(u8, u64, u16)>::LAYOUT.shape else {
            panic!("a tuple is a struct")
        };
        let offsets: Vec<_> = fields.iter().map(|f| (f.name, f.offset)).collect();
        let t = (0u8, 0u64, 0u16);
        let base = &t as *const _ as usize;
        assert_eq!(
            offsets,
            vec![
                ("0", &t.0 as *const _ as usize - base),
                ("1", &t.1 as *const _ as usize - base),
                ("2", &t.2 as *const _ as usize - base),
            ]
        );
    }
}
