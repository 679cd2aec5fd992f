//! Handles to objects in a region: [`ShmBox`] (this process's handle to an allocation),
//! [`ShmPtr`] (an offset stored inside shared objects) and [`ShmLockSet`].

use std::any::type_name;
use std::fmt;
use std::marker::PhantomData;
use std::mem::{align_of, size_of};
use std::ops::Deref;

use super::heap::Layout;
use super::ShmRegion;
use crate::lock_set::{LockSet, PaddedLock};
use crate::raw::{Futex, RawLock};
use crate::{ShmSafe, ShmZeroable};

/// The layout and type tag recorded for `T` in its block: the tag is the fingerprint of
/// `T`'s structural layout (computed at compile time), so a process asking for another
/// layout gets an error, not a misread, whatever the two types are called.
pub(crate) fn layout_of<T: ShmSafe>() -> Layout {
    const {
        assert!(
            align_of::<T>() <= 4096,
            "this type is aligned to more than 4096 bytes, and a region's mapping is only \
             page-aligned, so no object in it could be: lower its `#[repr(align(..))]`"
        )
    };
    Layout {
        size: size_of::<T>() as u64,
        align: align_of::<T>() as u64,
        tag: const { T::LAYOUT.fingerprint() },
    }
}

/// A link from one shared object to another: an offset into the region, the same in every
/// process whatever address it maps the region at. Zero bytes are the null pointer.
///
/// Resolve it with [`ShmRegion::get`], which checks that it points at a live object of type
/// `T`; a damaged or stale offset gives an `Err`, never undefined behaviour.
///
/// ```
/// use lockkit::{ShmMutex, ShmPtr, ShmRegion};
///
/// let region = ShmRegion::anonymous(1 << 20)?;
/// let leaf = region.alloc(42u64)?;
/// let root = region.alloc(ShmMutex::new(ShmPtr::<u64>::null()))?;
/// *root.lock() = leaf.ptr();
/// let link = *root.lock();
/// assert_eq!(*region.get(link)?, 42);
/// # Ok::<(), lockkit::Error>(())
/// ```
#[repr(transparent)]
pub struct ShmPtr<T> {
    offset: u64,
    _type: PhantomData<fn() -> T>,
}

impl<T> ShmPtr<T> {
    /// The null pointer.
    pub const fn null() -> Self {
        ShmPtr::from_offset(0)
    }

    /// A pointer from a raw offset, e.g. one read from a file or another program. Nothing is
    /// checked until it is resolved.
    pub const fn from_offset(offset: u64) -> Self {
        ShmPtr {
            offset,
            _type: PhantomData,
        }
    }

    /// The offset from the region's start.
    pub const fn offset(self) -> u64 {
        self.offset
    }

    /// Whether this is the null pointer.
    pub const fn is_null(self) -> bool {
        self.offset == 0
    }
}

impl<T> Clone for ShmPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for ShmPtr<T> {}
impl<T> PartialEq for ShmPtr<T> {
    fn eq(&self, other: &Self) -> bool {
        self.offset == other.offset
    }
}
impl<T> Eq for ShmPtr<T> {}
impl<T> Default for ShmPtr<T> {
    fn default() -> Self {
        Self::null()
    }
}
impl<T> fmt::Debug for ShmPtr<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShmPtr<{}>({:#x})", type_name::<T>(), self.offset)
    }
}

// SAFETY: an integer offset, meaningful in every process.
unsafe impl<T> ShmSafe for ShmPtr<T> {
    const LAYOUT: &'static crate::layout::TypeLayout = &crate::layout::TypeLayout::sized::<Self>(
        "ShmPtr",
        crate::layout::Shape::Ptr {
            target_size: size_of::<T>(),
            target_align: align_of::<T>(),
        },
    );
}
// SAFETY: zero is the null pointer.
unsafe impl<T> ShmZeroable for ShmPtr<T> {}

/// This process's handle to an object allocated in a region.
///
/// It dereferences to `&T` only: the object is shared with other processes, so it is changed
/// through the locks and atomics inside it.
///
/// **Dropping a `ShmBox` never frees the object.** Other processes (forked children holding
/// copies of this handle, or processes that found it by name) may still use it, and no single
/// process can know when they are done, so freeing is explicit: [`ShmRegion::free`]. This also
/// means the copies of a handle that `fork` gives a child cannot free anything when the child
/// drops them or exits. A second `free` of the same object, through any copy, is refused with
/// [`Error::StaleHandle`](crate::Error::StaleHandle).
pub struct ShmBox<T> {
    pub(super) region: ShmRegion,
    pub(super) offset: u64,
    pub(super) gen: u64,
    pub(super) _type: PhantomData<T>,
}

impl<T> ShmBox<T> {
    /// A pointer to the object, to store inside other shared objects.
    pub fn ptr(&self) -> ShmPtr<T> {
        ShmPtr::from_offset(self.offset)
    }

    /// The region the object lives in.
    pub fn region(&self) -> &ShmRegion {
        &self.region
    }
}

impl<T> Deref for ShmBox<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the block was allocated for a T and initialised by `alloc`/`alloc_zeroed`;
        // the region stays mapped while this handle holds it; the block is only reused after
        // an explicit `free`, whose contract forbids using the object afterwards.
        unsafe { self.region.object::<T>(self.offset) }
    }
}

impl<T: fmt::Debug> fmt::Debug for ShmBox<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShmBox")
            .field("offset", &format_args!("{:#x}", self.offset))
            .field("value", &**self)
            .finish()
    }
}

/// The header of a runtime-sized lock set in its block: the number of locks, as wide as a
/// set entry so the locks after it stay aligned.
#[repr(C)]
pub(crate) struct LockSetHead<R: RawLock> {
    pub(crate) len: std::sync::atomic::AtomicU64,
    /// The backend is part of the block's type tag: a set of one backend is not found as a
    /// set of another.
    _backend: PhantomData<R>,
    /// A set entry's alignment (and so its width), without restating it.
    _align: [PaddedLock<R>; 0],
}

// The locks start right after the head, aligned.
const _: () = assert!(
    size_of::<LockSetHead<Futex>>() == align_of::<PaddedLock>()
        && align_of::<LockSetHead<Futex>>() == align_of::<PaddedLock>()
);

// SAFETY: an atomic counter; the backend is a marker. Never reachable as a `&T` from safe
// code: the head is read only by the region's lock-set functions.
unsafe impl<R: RawLock> ShmSafe for LockSetHead<R> {
    const LAYOUT: &'static crate::layout::TypeLayout = &crate::layout::TypeLayout::opaque::<Self>(
        if cfg!(feature = "lock-debug") {
            "lockkit::LockSetHead/1+debug"
        } else {
            "lockkit::LockSetHead/1"
        },
        R::LAYOUT_NAME,
    );
}

/// A lock set whose size is chosen at run time, allocated in a region
/// ([`ShmRegion::alloc_lock_set`]). It dereferences to [`LockSet`] for `lock(i)`, `try_lock(i)`,
/// `lock_for(&key)` and the rest. Like [`ShmBox`], dropping it frees nothing.
///
/// `ShmLockSet` holds futex locks; `ShmLockSet<R>` from
/// [`ShmRegion::alloc_lock_set_with`] holds locks of backend `R`.
pub struct ShmLockSet<R: RawLock = Futex> {
    pub(super) inner: ShmBox<LockSetHead<R>>,
    pub(super) len: usize,
}

impl<R: RawLock> Deref for ShmLockSet<R> {
    type Target = LockSet<R>;
    fn deref(&self) -> &LockSet<R> {
        // SAFETY: `alloc_lock_set` placed `len` zeroed (unlocked) PaddedLocks right after the
        // head in the same block, and the block stays allocated (see ShmBox::deref).
        let locks = unsafe { self.inner.region.lock_slice(self.inner.offset, self.len) };
        LockSet::from_slice(locks)
    }
}

impl<R: RawLock> fmt::Debug for ShmLockSet<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// The bytes each lock of a runtime-sized set takes (`SET_ENTRY_BYTES` for every backend).
pub(crate) const fn lock_size<R: RawLock>() -> u64 {
    size_of::<PaddedLock<R>>() as u64
}
