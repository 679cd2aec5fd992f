//! A bounds-checked, read-mostly view of a mapped region's bytes, shared by a region's own
//! mapping and the inspector's read-only one: the type registry and the lock report read
//! through it and never take a lock.

use std::sync::atomic::AtomicU64;

use super::header::{Header, Identity, HEADER_SIZE};
use super::heap::Heap;
pub(crate) use crate::layout::printable;

/// A mapped region, identity validated.
pub(crate) struct View<'a> {
    base: *mut u8,
    len: u64,
    pub(crate) id: Identity,
    _map: std::marker::PhantomData<&'a ()>,
}

impl<'a> View<'a> {
    /// # Safety
    /// `base..base + len` is a live mapping of a region (page-aligned) for `'a`, whose
    /// identity `id` was validated against `len` (`heap_start..heap_end` and the type
    /// registry lie inside it). The view only reads through atomics, unless the caller uses
    /// it to write (and then the mapping must be writable).
    pub(crate) unsafe fn new(base: *mut u8, len: usize, id: Identity) -> View<'a> {
        debug_assert!(len >= HEADER_SIZE && id.total_size <= len as u64);
        View {
            base,
            len: len as u64,
            id,
            _map: std::marker::PhantomData,
        }
    }

    /// Runs `f` on the view of the registered mapping that holds `addr`, if it is still
    /// `expected` (base, length, object identity, as `regions::region_of` gave them), while
    /// it stays mapped (`regions::pinned`): for a region no handle of the caller's keeps
    /// mapped, such as one holding a lock whose guard was leaked. `f` reads, or writes
    /// atomics only (the order and site tables), and must not drop a region.
    #[cfg_attr(not(feature = "lock-debug"), allow(dead_code))]
    pub(crate) fn with_registered<T>(
        addr: usize,
        expected: (usize, usize, u64, u64),
        f: impl FnOnce(&View<'_>) -> T,
    ) -> Option<T> {
        crate::regions::pinned(addr, |base, len, dev, ino| {
            if (base, len, dev, ino) != expected {
                return None;
            }
            let id = Identity::for_size(len).ok()?;
            // SAFETY: a registered mapping of a region, pinned (not unmapped) until this
            // closure returns; the identity for `len` puts the header, tables and heap
            // inside it; `f` only reads, or writes atomics.
            let view = unsafe { View::new(base as *mut u8, len, id) };
            Some(f(&view))
        })
        .flatten()
    }

    pub(crate) fn header(&self) -> &'a Header {
        // SAFETY: the mapping holds at least a header (identity validated); Header is all
        // atomics, valid for any bytes.
        unsafe { &*(self.base as *const Header) }
    }

    pub(crate) fn heap(&self) -> Heap<'a> {
        // SAFETY: base/len describe the live mapping; the validated identity puts the heap
        // inside it.
        unsafe {
            Heap::new(
                self.base,
                self.len as usize,
                self.header(),
                self.id.heap_start,
                self.id.heap_end,
            )
        }
    }

    /// The word at `offset`, if it lies inside the mapping and is 8-aligned.
    pub(crate) fn word(&self, offset: u64) -> Option<&'a AtomicU64> {
        self.object::<AtomicU64>(offset)
    }

    /// A `T` at `offset`, if it lies inside the mapping and is aligned for `T`. Only for
    /// types every bit pattern of which is a valid value, used through `&T` (atomics, locks
    /// made of atomics and C structs behind `UnsafeCell`).
    pub(crate) fn object<T: AnyBytes>(&self, offset: u64) -> Option<&'a T> {
        let size = std::mem::size_of::<T>() as u64;
        let end = offset.checked_add(size)?;
        if end > self.len || offset % std::mem::align_of::<T>() as u64 != 0 {
            return None;
        }
        // SAFETY: in bounds and aligned (checked; the mapping is page-aligned), and any
        // bytes are a valid T (`AnyBytes`); the mapping lives for 'a.
        Some(unsafe { &*(self.base.add(offset as usize) as *const T) })
    }
}

/// Types for which every bit pattern is a valid value and whose every method used by the
/// view's callers only loads (or writes through atomics): what may be read at an offset
/// another process chose.
///
/// # Safety
/// Implementors are valid for any bytes.
pub(crate) unsafe trait AnyBytes {}

// SAFETY: an atomic integer.
unsafe impl AnyBytes for AtomicU64 {}
// SAFETY: an atomic integer.
unsafe impl AnyBytes for std::sync::atomic::AtomicU32 {}
// SAFETY: the lock word(s) of every backend are atomics or C structs behind UnsafeCell
// (pthread_mutex_t, sem_t), all valid for any bytes.
unsafe impl<R: crate::raw::RawLock> AnyBytes for crate::GenLock<R> {}
// SAFETY: a futex word and a counter.
unsafe impl AnyBytes for crate::RecLock {}
// SAFETY: five atomic words, valid for any bytes; the report's `snapshot` only loads.
unsafe impl AnyBytes for crate::rw_lock::raw::RawRwLock {}
