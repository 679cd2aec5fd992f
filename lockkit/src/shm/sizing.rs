//! [`RegionSize`]: the size of a region, from what will go in it.
//!
//! A region of `size` bytes is laid out as: the header (with the root table and the owner-id
//! area), the allocator's block-start bitmap, the heap, then three tables that take a share
//! of the size: the type registry (1/64), the lock-order table (1/128) and the table of
//! lock sites (1/128), each within fixed bounds. Every object in the heap is a block: a
//! 32-byte header and the object, rounded up to 32 bytes, and for a type aligned to more
//! than 32 bytes up to `align - 32` bytes of padding in front. `RegionSize` adds those up
//! for the objects counted and finds the smallest whole number of pages whose heap and
//! registry hold them all.

use std::collections::BTreeMap;

use super::handle::{layout_of, lock_size, LockSetHead};
use super::header::{Identity, MIN_TOTAL, NROOTS};
use super::heap::{GRAN, HDR};
use super::{page_round, types};
use crate::layout::TypeLayout;
use crate::raw::{Futex, RawLock};
use crate::{Error, Result, ShmSafe};

/// The most a region's type registry holds (1/64 of the region, at most 1 MiB).
const MAX_REGISTRY: u64 = 1 << 20;

/// Counts what a region will hold and gives the size to create it with, so that it holds
/// exactly that: every object's block header, its alignment, the type registry's entry for
/// each type and the tables a region keeps besides its heap are accounted for.
///
/// # A region's limits
/// - **Roots**: at most 32 named roots ([`publish`](super::ShmRegion::publish)), names of 1
///   to 31 bytes. Publish one root that links to the others when you need more.
/// - **Type registry**: 1/64 of the region, between 4 KiB and 1 MiB; one entry per type
///   ever allocated (a few dozen to a few hundred bytes each). A type that does not fit is
///   still allocated, but left undescribed (lookups then check only its fingerprint).
/// - **Lock-order table** (feature `lock-debug`): 1/128 of the region, between 4 KiB and
///   256 KiB: 64 to 4096 recorded pairs of locks taken one inside the other.
/// - **Lock-site table** (feature `lock-debug`): 1/128 of the region, between 4 KiB and
///   256 KiB: 32 to 2048 distinct source locations that take locks.
/// - **Mapped regions**: a process maps at most 64 regions at once; mapping one more fails
///   until one is dropped.
/// - **Objects**: aligned to at most 4096 bytes (a page); every allocation takes a block of
///   at least 32 bytes more than its size.
///
/// A type aligned to more than 32 bytes (a lock set's cache-line-padded locks, a
/// `#[shared_locked]` struct holding a `GenLockSet`) is counted with the most padding it can
/// need, `align - 32` bytes; the allocator often needs less, which is then left free.
/// Frees and reallocations can fragment the heap: size for what is live at the peak, and
/// add room if the program frees and allocates blocks of varying sizes.
///
/// ```
/// use std::sync::atomic::AtomicU64;
/// use lockkit::{GenLockSet, RegionSize, ShmMutex, ShmRegion};
///
/// type Table = ShmMutex<[u64; 512]>;
/// let size = RegionSize::new()
///     .object::<Table>()
///     .objects::<AtomicU64>(100)
///     .lock_set(16)
///     .roots(1)
///     .bytes()?;
/// let region = ShmRegion::anonymous(size)?;
/// let table = region.alloc(ShmMutex::new([0u64; 512]))?;
/// region.publish("table", &table)?;
/// let counters: Vec<_> = (0..100)
///     .map(|_| region.alloc(AtomicU64::new(0)))
///     .collect::<Result<_, _>>()?;
/// let stripes = region.alloc_lock_set(16)?;
/// # let _ = (counters, stripes);
/// # Ok::<(), lockkit::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct RegionSize {
    /// Heap bytes: every block, with the most padding its alignment can need.
    heap: u64,
    /// Registry bytes of each distinct type, by fingerprint.
    types: BTreeMap<u64, u64>,
    roots: usize,
    /// A count overflowed (more than the address space).
    overflow: bool,
}

impl RegionSize {
    /// Nothing counted yet: [`bytes`](RegionSize::bytes) gives the smallest region.
    ///
    /// ```
    /// let smallest = lockkit::RegionSize::new().bytes()?;
    /// assert!(lockkit::ShmRegion::anonymous(smallest).is_ok());
    /// # Ok::<(), lockkit::Error>(())
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one object of type `T` ([`alloc`](super::ShmRegion::alloc) or
    /// [`alloc_zeroed`](super::ShmRegion::alloc_zeroed)).
    ///
    /// ```
    /// let size = lockkit::RegionSize::new().object::<[u64; 1024]>().bytes()?;
    /// let region = lockkit::ShmRegion::anonymous(size)?;
    /// assert!(region.alloc([0u64; 1024]).is_ok());
    /// # Ok::<(), lockkit::Error>(())
    /// ```
    pub fn object<T: ShmSafe>(&mut self) -> &mut Self {
        self.objects::<T>(1)
    }

    /// Counts `n` objects of type `T`, each allocated on its own.
    ///
    /// ```
    /// let size = lockkit::RegionSize::new().objects::<u64>(1000).bytes()?;
    /// let region = lockkit::ShmRegion::anonymous(size)?;
    /// for i in 0..1000u64 {
    ///     region.alloc(i)?;
    /// }
    /// # Ok::<(), lockkit::Error>(())
    /// ```
    pub fn objects<T: ShmSafe>(&mut self, n: usize) -> &mut Self {
        let l = layout_of::<T>();
        self.blocks(l.size, l.align, n as u64, l.tag, T::LAYOUT)
    }

    /// Counts a lock set of `n` futex locks ([`alloc_lock_set`](super::ShmRegion::alloc_lock_set)).
    ///
    /// ```
    /// let size = lockkit::RegionSize::new().lock_set(64).bytes()?;
    /// let region = lockkit::ShmRegion::anonymous(size)?;
    /// assert_eq!(region.alloc_lock_set(64)?.len(), 64);
    /// # Ok::<(), lockkit::Error>(())
    /// ```
    pub fn lock_set(&mut self, n: usize) -> &mut Self {
        self.lock_set_with::<Futex>(n)
    }

    /// Counts a lock set of `n` locks of backend `R`
    /// ([`alloc_lock_set_with`](super::ShmRegion::alloc_lock_set_with)).
    ///
    /// ```
    /// use lockkit::raw::Spin;
    ///
    /// let size = lockkit::RegionSize::new().lock_set_with::<Spin>(8).bytes()?;
    /// let region = lockkit::ShmRegion::anonymous(size)?;
    /// assert!(region.alloc_lock_set_with::<Spin>(8).is_ok());
    /// # Ok::<(), lockkit::Error>(())
    /// ```
    pub fn lock_set_with<R: RawLock>(&mut self, n: usize) -> &mut Self {
        let head = layout_of::<LockSetHead<R>>();
        match (n as u64)
            .checked_mul(lock_size::<R>())
            .and_then(|b| b.checked_add(head.size))
        {
            Some(size) => self.blocks(size, head.align, 1, head.tag, LockSetHead::<R>::LAYOUT),
            None => {
                self.overflow = true;
                self
            }
        }
    }

    /// Counts `n` named roots ([`publish`](super::ShmRegion::publish)): they take no heap,
    /// but a region has room for 32.
    ///
    /// ```
    /// assert!(lockkit::RegionSize::new().roots(32).bytes().is_ok());
    /// assert!(lockkit::RegionSize::new().roots(33).bytes().is_err());
    /// ```
    pub fn roots(&mut self, n: usize) -> &mut Self {
        self.roots = self.roots.saturating_add(n);
        self
    }

    /// The heap bytes counted so far: every block with its header and padding.
    ///
    /// ```
    /// // A u64 takes a block of 64 bytes: a 32-byte header and 8 bytes, rounded up to 32.
    /// assert_eq!(lockkit::RegionSize::new().objects::<u64>(3).heap_bytes(), 3 * 64);
    /// ```
    pub fn heap_bytes(&self) -> usize {
        usize::try_from(self.heap).unwrap_or(usize::MAX)
    }

    /// The smallest region size (whole pages) that holds everything counted: pass it to
    /// [`ShmRegion::anonymous`](super::ShmRegion::anonymous) or
    /// [`create`](super::ShmRegion::create).
    ///
    /// [`Error::RootTableFull`] for more than 32 roots, [`Error::TypeRegistryFull`] for
    /// type descriptions beyond the largest registry, [`Error::OutOfMemory`] for a size
    /// beyond the address space.
    ///
    /// ```
    /// let size = lockkit::RegionSize::new().objects::<[u8; 4000]>(10).bytes()?;
    /// assert!(size >= 10 * 4000);
    /// assert_eq!(size % 4096, 0);
    /// # Ok::<(), lockkit::Error>(())
    /// ```
    pub fn bytes(&self) -> Result<usize> {
        if self.roots > NROOTS {
            return Err(Error::RootTableFull { capacity: NROOTS });
        }
        let registry: u64 = self.types.values().sum();
        if registry > MAX_REGISTRY {
            return Err(Error::TypeRegistryFull {
                needed: registry as usize,
                capacity: MAX_REGISTRY as usize,
            });
        }
        let too_big = || Error::OutOfMemory {
            requested: self.heap_bytes(),
            largest_free: 0,
        };
        if self.overflow {
            return Err(too_big());
        }
        let page = page_round(1)?;
        // Whether a region of `pages` pages holds it all. The heap grows by nearly a page
        // with every page (the tables and the bitmap take a few hundred bytes of each), so
        // this is false up to some count of pages and true from there on.
        let fits = |pages: usize| -> Result<bool> {
            let total = pages.checked_mul(page).ok_or_else(too_big)?;
            let id = Identity::for_size(total)?;
            Ok(id.heap_end - id.heap_start >= self.heap
                && Identity::types_bytes(total as u64) >= registry)
        };
        let mut lo = page_round(MIN_TOTAL)? / page; // fits(lo - 1) is false
        if fits(lo)? {
            return Ok(lo * page);
        }
        // Double until it fits, then halve the gap.
        let mut hi = lo;
        loop {
            lo = hi;
            hi = hi.checked_mul(2).ok_or_else(too_big)?;
            if fits(hi)? {
                break;
            }
        }
        // fits(lo) is false, fits(hi) is true.
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if fits(mid)? {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        Ok(hi * page)
    }

    fn blocks(&mut self, size: u64, align: u64, n: u64, tag: u64, ty: &TypeLayout) -> &mut Self {
        // As the allocator lays out a block: the header and the payload in granules, and
        // in front, padding up to the alignment (block starts are granule-aligned, so a
        // type aligned to at most a granule needs none).
        let one = size
            .checked_add(HDR + GRAN - 1)
            .map(|b| b & !(GRAN - 1))
            .and_then(|b| b.checked_add(align.saturating_sub(GRAN)));
        match one
            .and_then(|b| b.checked_mul(n))
            .and_then(|b| b.checked_add(self.heap))
        {
            Some(heap) => self.heap = heap,
            None => self.overflow = true,
        }
        if n > 0 {
            self.types
                .entry(tag)
                .or_insert_with(|| types::entry_bytes(ty));
        }
        self
    }
}
