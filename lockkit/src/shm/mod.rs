//! Shared-memory regions: one mapping with a header, an allocator and named roots.
//!
//! Invariants kept here: a [`ShmRegion`]'s mapping stays mapped while any handle to it (the
//! region, a [`ShmBox`], a [`ShmLockSet`]) lives in this process; its header identity was
//! validated before the first typed access, and `heap_start..heap_end` lies inside it; every
//! typed reference handed out points at a live block of that type (checked by the allocator's
//! tags, or guaranteed by the handle that allocated it).

mod handle;
pub(crate) mod header;
mod heap;
pub(crate) mod map;
mod options;
pub(crate) mod order_table;
mod sites;
mod sizing;
mod types;
pub(crate) mod view;

use std::fmt;
use std::marker::PhantomData;
use std::mem::size_of;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

pub(crate) use handle::lock_size;
pub use handle::{ShmBox, ShmLockSet, ShmPtr};
pub use heap::HeapStats;
pub use options::RegionOptions;
pub use sizing::RegionSize;

use handle::{layout_of, LockSetHead};
use header::{Header, Identity, NROOTS, ROOT_NAME_LEN, ROOT_TYPE_LEN};
use heap::{Heap, Layout};
use map::{Mapping, ShmName};

use crate::layout::{self, TypeLayout};
use crate::lock_set::{LockSet, PaddedLock};
use crate::raw::{Futex, RawLock};
use crate::{Error, GenLockGuard, Result, ShmSafe, ShmZeroable};

/// The mode of a named region when the creator does not choose one: owner read/write.
pub const DEFAULT_MODE: u32 = 0o600;

/// A shared-memory region: memory that several processes map, with an allocator and a table
/// of named roots inside it.
///
/// - [`anonymous`](ShmRegion::anonymous): for a parent that forks its workers (they inherit
///   the mapping).
/// - [`create`](ShmRegion::create) / [`open`](ShmRegion::open): a named POSIX shm object that
///   unrelated processes attach to; [`publish`](ShmRegion::publish) and
///   [`lookup`](ShmRegion::lookup) let them find objects by name.
///
/// `ShmRegion` is a cheap handle (clone it freely); the mapping goes away when the last
/// handle of this process, including every [`ShmBox`] from it, is dropped.
///
/// ```
/// use lockkit::{ShmMutex, ShmRegion};
///
/// let region = ShmRegion::anonymous(1 << 20)?;
/// let hits = region.alloc(ShmMutex::new(0u64))?; // shm_malloc + lock_init
/// *hits.lock() += 1;
/// assert_eq!(*hits.lock(), 1);
/// # Ok::<(), lockkit::Error>(())
/// ```
#[derive(Clone)]
pub struct ShmRegion {
    inner: Arc<Inner>,
}

struct Inner {
    map: Mapping,
    heap_start: u64,
    heap_end: u64,
    /// The validated layout (heap bounds, type registry).
    id: Identity,
    /// `/name` for named regions.
    name: Option<String>,
    /// The pid that created the named object; only it unlinks the name on drop.
    creator: Option<u32>,
    unlink_on_drop: AtomicBool,
    /// This mapping's number in the process, never reused (unlike the `Arc`'s address):
    /// what per-thread caches of checks key on.
    serial: u64,
}

/// The next mapping's [`Inner::serial`].
static NEXT_SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Drop for Inner {
    fn drop(&mut self) {
        if let (Some(name), Some(creator)) = (&self.name, self.creator) {
            // A child of `fork` holds a copy of this handle: it must not unlink the
            // parent's name when it drops it.
            // And a newer region that took over the name (after an explicit `unlink` and
            // `create`) must not lose it when this old instance goes: the name is unlinked
            // only if it still refers to this object. (Between that check and the unlink a
            // third process could replace the name again; POSIX offers no unlink-if.)
            if self.unlink_on_drop.load(Relaxed) && creator == std::process::id() {
                if let Ok(n) = ShmName::parse(name) {
                    if self.map.is_named(&n) {
                        let _ = map::unlink_named(&n);
                    }
                }
            }
        }
    }
}

/// A region's figures at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionStats {
    /// The whole mapping, header included.
    pub size: usize,
    /// The bytes the allocator manages.
    pub heap_size: usize,
    /// Where they start, from the region's start (after the header and the allocator's
    /// block-start bitmap; the type registry follows the heap).
    pub heap_start: usize,
    /// The registry of type descriptions (see [`layout`]): its size and the bytes in use.
    pub type_registry: (usize, usize),
    /// The allocator's figures.
    pub heap: HeapStats,
}

impl ShmRegion {
    /// Maps `size` bytes (rounded up to whole pages) of zeroed shared memory that children
    /// created by `fork` share with this process.
    ///
    /// The memory is a memfd mapped `MAP_SHARED`: a child's writes are seen by the parent and
    /// the other children. It has no name, so only this process and its descendants reach it.
    pub fn anonymous(size: usize) -> Result<ShmRegion> {
        let size = page_round(size)?;
        let id = Identity::for_size(size)?;
        let map = map::anonymous(size)?;
        Self::format(map, id, None, None)
    }

    /// Creates a named region of `size` bytes (rounded up to whole pages) with mode 0600.
    ///
    /// `name` is a POSIX shm name such as `/registrar` (the leading `/` may be left out).
    /// Fails with [`Error::AlreadyExists`] if the name is taken. The name is unlinked when the
    /// creating process drops its last handle, unless [`keep_name`](ShmRegion::keep_name)
    /// was called; processes that have it open keep using it.
    ///
    /// The region is built (its memory reserved, its header and heap written) without a name,
    /// and named only once it is complete, in one step that fails if the name exists: of
    /// several processes creating one name at once exactly one succeeds, an opener never
    /// finds a half-made region, and a creator killed half-way leaves nothing behind, so the
    /// next `create` of the name succeeds.
    pub fn create(name: &str, size: usize) -> Result<ShmRegion> {
        Self::create_with_mode(name, size, DEFAULT_MODE)
    }

    /// [`create`](ShmRegion::create) with an explicit permission mode (e.g. `0o660` for a
    /// group of cooperating users). The umask does not narrow it. World-writable modes and
    /// set-id bits are refused ([`Error::UnsafeMode`]); [`RegionOptions`] can allow them.
    pub fn create_with_mode(name: &str, size: usize, mode: u32) -> Result<ShmRegion> {
        RegionOptions::new().mode(mode).create(name, size)
    }

    /// Attaches to a named region that some process created.
    ///
    /// Only an object this user owns and nobody else may write is trusted
    /// ([`Error::Untrusted`] otherwise; [`RegionOptions`] can widen that). A region is named
    /// only once it is complete (see [`create`](ShmRegion::create)), so there is no creator
    /// to wait for. Everything is checked before it is used; each problem has its own error:
    /// [`Error::NotFound`], [`Error::PermissionDenied`], [`Error::NotAnObject`] (a directory,
    /// a FIFO or the like at the name, looked at without opening or waiting on it),
    /// [`Error::NotLockkitRegion`], [`Error::VersionMismatch`], [`Error::Truncated`],
    /// [`Error::CorruptHeader`], and [`Error::NoSpace`] for a region with holes (a sparse
    /// copy) whose missing pages `/dev/shm` cannot provide: they are reserved here, where
    /// the first touch of one would otherwise be a SIGBUS.
    pub fn open(name: &str) -> Result<ShmRegion> {
        RegionOptions::new().open(name)
    }

    /// Removes a name, so that no new process can open it. Processes that have the region
    /// mapped keep using it; the memory goes away when the last one unmaps it.
    pub fn unlink(name: &str) -> Result<()> {
        map::unlink_named(&ShmName::parse(name)?)
    }

    /// Keeps the name after the creator's last handle is dropped (for a region that should
    /// outlive its creator). Remove it later with [`unlink`](ShmRegion::unlink).
    pub fn keep_name(&self) {
        self.inner.unlink_on_drop.store(false, Relaxed);
    }

    /// `/name` for a named region, `None` for an anonymous one.
    pub fn name(&self) -> Option<&str> {
        self.inner.name.as_deref()
    }

    /// The size of the mapping in bytes.
    pub fn size(&self) -> usize {
        self.inner.map.len()
    }

    pub(super) fn format(
        map: Mapping,
        id: Identity,
        name: Option<String>,
        creator: Option<u32>,
    ) -> Result<ShmRegion> {
        let region = Self::attach(map, id, name, creator);
        let hdr = region.header();
        hdr.write_creator(std::process::id());
        hdr.write_identity(&id);
        region.heap().format()?;
        hdr.mark_ready();
        Ok(region)
    }

    pub(super) fn attach(
        map: Mapping,
        id: Identity,
        name: Option<String>,
        creator: Option<u32>,
    ) -> Self {
        ShmRegion {
            inner: Arc::new(Inner {
                map,
                heap_start: id.heap_start,
                heap_end: id.heap_end,
                id,
                name,
                creator,
                unlink_on_drop: AtomicBool::new(creator.is_some()),
                serial: NEXT_SERIAL.fetch_add(1, Relaxed),
            }),
        }
    }

    fn header(&self) -> &Header {
        // SAFETY: the mapping is at least HEAP_START bytes (Identity::for_size checked it)
        // and page-aligned; Header is all atomics, valid for any bytes.
        unsafe { &*(self.inner.map.base() as *const Header) }
    }

    pub(crate) fn view(&self) -> view::View<'_> {
        // SAFETY: our live mapping, its identity validated when it was attached.
        unsafe { view::View::new(self.inner.map.base(), self.inner.map.len(), self.inner.id) }
    }

    fn heap(&self) -> Heap<'_> {
        // SAFETY: base/len describe our live mapping; the identity was validated, so the
        // heap bounds lie within it.
        unsafe {
            Heap::new(
                self.inner.map.base(),
                self.inner.map.len(),
                self.header(),
                self.inner.heap_start,
                self.inner.heap_end,
            )
        }
    }

    /// Takes the allocator lock. If a process died holding it (inside `alloc`, `free`,
    /// `publish` or `unpublish`), the heap and the root table are repaired first
    /// (`Heap::rebuild`) and the lock marked consistent; if the damage cannot be repaired,
    /// `CorruptRegion`, and the next caller tries again.
    fn alloc_lock(&self) -> Result<GenLockGuard<'_>> {
        let mut g = self.header().alloc_lock.get().lock();
        if GenLockGuard::owner_died(&g) {
            self.heap().rebuild()?;
            let heap = self.heap();
            for root in &self.header().roots {
                if root.name.iter().any(|w| w.load(Relaxed) != 0)
                    && !heap.is_live_payload(root.offset.load(Relaxed))
                {
                    clear_root(root);
                }
            }
            GenLockGuard::mark_consistent(&mut g);
        }
        Ok(g)
    }

    /// # Safety
    /// `offset` is the payload of a live block holding an initialised `T`.
    unsafe fn object<T>(&self, offset: u64) -> &T {
        // SAFETY: per the contract, in bounds, aligned and initialised.
        unsafe { &*(self.inner.map.base().add(offset as usize) as *const T) }
    }

    /// # Safety
    /// `offset` is the payload of a live lock-set block with at least `len` locks.
    unsafe fn lock_slice<R: RawLock>(&self, offset: u64, len: usize) -> &[PaddedLock<R>] {
        let first = offset as usize + size_of::<LockSetHead<R>>();
        // SAFETY: per the contract, `len` initialised PaddedLocks follow the head, aligned as
        // PaddedLock (the head has its alignment and a multiple of it as size).
        unsafe {
            std::slice::from_raw_parts(
                self.inner.map.base().add(first) as *const PaddedLock<R>,
                len,
            )
        }
    }

    /// Allocates a block for a value of type `ty` (tag and size in `layout`), registering
    /// `ty`'s description first. A description that does not fit is left out (the object
    /// matters more; the lock report then names the type as undescribed).
    /// Allocates a block for `layout` (type `ty`), has `init` write the object at its start,
    /// and only then makes it an object that `get` and `lookup` find: an object is never
    /// seen before its bytes are its type's.
    fn alloc_block(
        &self,
        layout: Layout,
        ty: &TypeLayout,
        init: impl FnOnce(*mut u8),
    ) -> Result<(u64, u64)> {
        let _g = self.alloc_lock()?;
        self.register_type(layout.tag, ty)?;
        let heap = self.heap();
        let block = heap.alloc(layout)?;
        // SAFETY: `alloc` returned an offset inside the mapping of a fresh block.
        init(unsafe { self.inner.map.base().add(block.0 as usize) });
        heap.publish(block.0)?;
        Ok(block)
    }

    /// Describes `ty` (fingerprint `tag`) in the region's type registry, or says why it
    /// cannot be; the caller holds the allocator lock.
    fn register_type(&self, tag: u64, ty: &TypeLayout) -> Result<()> {
        let reason = match self.view().register_type(tag, ty) {
            Ok(()) => return Ok(()),
            Err(types::Registered::Collision) => {
                return Err(Error::LayoutCollision {
                    type_name: ty.name.into(),
                })
            }
            Err(types::Registered::Full { needed, free }) => format!(
                "its type registry is full ({free} bytes left of {}, {needed} needed to \
                 describe this type): create the region larger (the registry is 1/64 of it, \
                 4 KiB to 1 MiB)",
                self.inner.id.types_area().1 - self.inner.id.types_area().0
            ),
            Err(types::Registered::Undescribable(why)) => why.to_string(),
        };
        Err(Error::TypeNotDescribed {
            type_name: ty.name.into(),
            reason,
        })
    }

    fn boxed<T>(&self, (offset, gen): (u64, u64)) -> ShmBox<T> {
        ShmBox {
            region: self.clone(),
            offset,
            gen,
            _type: PhantomData,
        }
    }

    /// Moves `value` into the region (Kamailio's `shm_malloc` plus initialisation).
    ///
    /// Fails with [`Error::OutOfMemory`] when no free block fits; the region is unchanged.
    /// Only [`ShmSafe`] types can be allocated; `T` must have no drop glue (shared objects are
    /// never dropped, only freed).
    pub fn alloc<T: ShmSafe>(&self, value: T) -> Result<ShmBox<T>> {
        const { assert_no_drop::<T>() };
        let block = self.alloc_block(layout_of::<T>(), T::LAYOUT, |at| {
            // SAFETY: the block is fresh, sized and aligned for T, and nobody else knows of
            // it yet (it is published after this).
            unsafe { (at as *mut T).write(value) }
        })?;
        Ok(self.boxed(block))
    }

    /// Allocates a `T` whose bytes are all zero: an unlocked lock, zero counters, null
    /// pointers (Kamailio's `lock_alloc` needs no `lock_init` after this).
    pub fn alloc_zeroed<T: ShmZeroable>(&self) -> Result<ShmBox<T>> {
        const { assert_no_drop::<T>() };
        let block = self.alloc_block(layout_of::<T>(), T::LAYOUT, |at| {
            // SAFETY: as in `alloc`; zero bytes are a valid T by `T: ShmZeroable`.
            unsafe { std::ptr::write_bytes(at, 0, size_of::<T>()) }
        })?;
        Ok(self.boxed(block))
    }

    /// Frees an object (Kamailio's `shm_free`, `lock_dealloc`).
    ///
    /// Returns [`Error::StaleHandle`] if the object was already freed, e.g. through a copy of
    /// the handle that `fork` made, and [`Error::ForeignHandle`] if it belongs to another
    /// region.
    ///
    /// # Safety
    /// No process may use the object afterwards: not through another copy of this handle, a
    /// [`ShmPtr`] it resolved earlier, or a reference from [`lookup`](ShmRegion::lookup). The
    /// memory goes back to the allocator and will hold other objects. (Which processes still
    /// use a shared object is a protocol between them that the compiler cannot see.)
    pub unsafe fn free<T>(&self, boxed: ShmBox<T>) -> Result<()> {
        self.free_block(&boxed.region, boxed.offset, boxed.gen)
    }

    fn free_block(&self, owner: &ShmRegion, offset: u64, gen: u64) -> Result<()> {
        if !Arc::ptr_eq(&owner.inner, &self.inner) {
            return Err(Error::ForeignHandle);
        }
        let _g = self.alloc_lock()?;
        #[cfg(feature = "lock-debug")]
        let capacity = self.heap().capacity(offset).ok();
        // Free first: a handle that is stale (its block was freed, and the offset may now
        // be another object's, published under a name) must change nothing, not even that
        // name.
        self.heap().free(offset, gen)?;
        self.unpublish_offset(offset);
        #[cfg(feature = "lock-debug")]
        if let Some(capacity) = capacity {
            let start = self.inner.map.base() as usize + offset as usize;
            crate::lock_hooks::freed(start, start + capacity as usize);
        }
        Ok(())
    }

    /// Walks the whole heap under the allocator lock and reports the first inconsistency
    /// as [`Error::CorruptRegion`]: for a region another process may have damaged, or after
    /// a process died inside the allocator. `Ok` means the heap's blocks, boundary tags,
    /// bitmap, free lists and figures all agree.
    pub fn check(&self) -> Result<()> {
        let _g = self.alloc_lock()?;
        self.heap().check()
    }

    /// `Heap::check_live` without the allocator lock, as `get` must stay cheap; a refusal
    /// is asked again under the lock, since a neighbour being split or merged by another
    /// process at that instant can make a sound block look out of place.
    fn check_live(&self, offset: u64, layout: heap::Layout) -> Result<()> {
        if self.heap().check_live(offset, layout).is_ok() {
            return Ok(());
        }
        let _g = self.alloc_lock()?;
        self.heap().check_live(offset, layout)
    }

    /// Resolves a [`ShmPtr`], checking that it points at a live `T` in this region.
    pub fn get<T: ShmSafe>(&self, ptr: ShmPtr<T>) -> Result<&T> {
        let layout = layout_of::<T>();
        self.check_live(ptr.offset(), layout)?;
        self.check_described::<T>(layout.tag)?;
        // SAFETY: check_live found a live block tagged for T, large and aligned enough.
        Ok(unsafe { self.object(ptr.offset()) })
    }

    /// Allocates a lock set of `n` locks, each on its own cache line, all unlocked
    /// (Kamailio's `lock_set_alloc` + `lock_set_init`). `n == 0` is [`Error::EmptyLockSet`].
    pub fn alloc_lock_set(&self, n: usize) -> Result<ShmLockSet> {
        self.alloc_lock_set_with::<Futex>(n)
    }

    /// [`alloc_lock_set`](ShmRegion::alloc_lock_set) for locks of backend `R`
    /// (`region.alloc_lock_set_with::<SysvSem>(16)`).
    pub fn alloc_lock_set_with<R: RawLock>(&self, n: usize) -> Result<ShmLockSet<R>> {
        if n == 0 {
            return Err(Error::EmptyLockSet);
        }
        let mut layout = layout_of::<LockSetHead<R>>();
        layout.size = (n as u64)
            .checked_mul(lock_size::<R>())
            .and_then(|b| b.checked_add(layout.size))
            .ok_or(Error::OutOfMemory {
                requested: usize::MAX,
                largest_free: 0,
            })?;
        let block = self.alloc_block(layout, LockSetHead::<R>::LAYOUT, |at| {
            // SAFETY: the fresh block holds the head and n PaddedLocks; zero bytes are a
            // valid head and unlocked locks, and the head's first word is its length.
            unsafe {
                std::ptr::write_bytes(at, 0, layout.size as usize);
                (*(at as *const LockSetHead<R>))
                    .len
                    .store(n as u64, Relaxed);
            }
        })?;
        let inner: ShmBox<LockSetHead<R>> = self.boxed(block);
        Ok(ShmLockSet { inner, len: n })
    }

    /// Frees a lock set (Kamailio's `lock_set_dealloc`).
    ///
    /// # Safety
    /// As for [`free`](ShmRegion::free): nobody may use the set afterwards.
    pub unsafe fn free_lock_set<R: RawLock>(&self, set: ShmLockSet<R>) -> Result<()> {
        self.free_block(&set.inner.region, set.inner.offset, set.inner.gen)
    }

    /// The allocator's figures (used, free, largest free block).
    pub fn stats(&self) -> Result<RegionStats> {
        let base = self.inner.map.base() as usize;
        self.stats_with(|owner| crate::liveness::holder_gone(base, owner))
    }

    /// [`stats`](ShmRegion::stats), asking `gone` whether an allocating owner's process is
    /// gone.
    fn stats_with(&self, gone: impl FnMut(u32) -> bool) -> Result<RegionStats> {
        let g = self.alloc_lock()?;
        let (mut heap, owners) = self.heap().stats()?;
        let types_used = self.header().types_used.load(Relaxed) as usize;
        // Who is gone is asked (a system call per owner) with the allocator free for others.
        drop(g);
        heap::count_orphans(&mut heap, owners, gone);
        Ok(RegionStats {
            size: self.size(),
            heap_size: (self.inner.heap_end - self.inner.heap_start) as usize,
            heap_start: self.inner.heap_start as usize,
            type_registry: (
                (self.inner.id.types_area().1 - self.inner.id.types_area().0) as usize,
                types_used,
            ),
            heap,
        })
    }

    /// Publishes an object under `name` (1 to 31 bytes), for processes that attach by name
    /// and find it with [`lookup`](ShmRegion::lookup).
    ///
    /// The root records `T`'s structural layout (see [`layout`]): a
    /// [`lookup`](ShmRegion::lookup) with another layout names the first field that differs.
    pub fn publish<T: ShmSafe>(&self, name: &str, object: &ShmBox<T>) -> Result<()> {
        self.publish_raw(
            name,
            &object.region,
            (object.offset, object.gen),
            (layout_of::<T>().tag, T::LAYOUT),
            std::any::type_name::<T>(),
        )
    }

    /// Publishes a runtime-sized lock set under `name`; find it with
    /// [`lookup_lock_set`](ShmRegion::lookup_lock_set).
    pub fn publish_lock_set<R: RawLock>(&self, name: &str, set: &ShmLockSet<R>) -> Result<()> {
        let b = &set.inner;
        self.publish_raw(
            name,
            &b.region,
            (b.offset, b.gen),
            (layout_of::<LockSetHead<R>>().tag, LockSetHead::<R>::LAYOUT),
            &format!("lockkit::LockSet<{}>", R::LAYOUT_NAME),
        )
    }

    fn publish_raw(
        &self,
        name: &str,
        owner: &ShmRegion,
        (offset, gen): (u64, u64),
        (tag, layout): (u64, &TypeLayout),
        ty: &str,
    ) -> Result<()> {
        if !Arc::ptr_eq(&owner.inner, &self.inner) {
            return Err(Error::ForeignHandle);
        }
        let key = root_key(name)?;
        let _g = self.alloc_lock()?;
        // A handle whose object another process (or a copy of the handle) freed: publishing
        // it would hand its memory to whoever looks the name up.
        self.heap().check_handle(offset, gen)?;
        let roots = &self.header().roots;
        if find_root(roots, &key).is_some() {
            return Err(Error::RootExists { name: name.into() });
        }
        let slot = roots
            .iter()
            .find(|r| r.name.iter().all(|w| w.load(Relaxed) == 0))
            .ok_or(Error::RootTableFull { capacity: NROOTS })?;
        // Registered when the object was allocated; a region whose registry was damaged
        // since cannot have the object found by name, as `get` could not vouch for it.
        self.register_type(tag, layout)?;
        slot.offset.store(offset, Relaxed);
        slot.tag.store(tag, Relaxed);
        let ty: [u64; ROOT_TYPE_LEN / 8] = header::pack(ty.as_bytes());
        for (w, v) in slot.type_name.iter().zip(ty) {
            w.store(v, Relaxed);
        }
        for (w, v) in slot.name.iter().zip(key) {
            w.store(v, Relaxed);
        }
        Ok(())
    }

    /// Removes the root called `name` (the object itself stays allocated).
    pub fn unpublish(&self, name: &str) -> Result<()> {
        let key = root_key(name)?;
        let _g = self.alloc_lock()?;
        let root = find_root(&self.header().roots, &key)
            .ok_or_else(|| Error::RootNotFound { name: name.into() })?;
        clear_root(root);
        Ok(())
    }

    /// Drops every root that names the object at `offset` (it is being freed).
    fn unpublish_offset(&self, offset: u64) {
        for r in &self.header().roots {
            if r.offset.load(Relaxed) == offset && r.name.iter().any(|w| w.load(Relaxed) != 0) {
                clear_root(r);
            }
        }
    }

    fn root_offset(
        &self,
        name: &str,
        (tag, layout): (u64, &TypeLayout),
        expected: &str,
    ) -> Result<u64> {
        let key = root_key(name)?;
        let _g = self.alloc_lock()?;
        let root = find_root(&self.header().roots, &key)
            .ok_or_else(|| Error::RootNotFound { name: name.into() })?;
        if root.tag.load(Relaxed) != tag {
            let there = layout::decode(&self.view().description(root.tag.load(Relaxed)));
            return Err(Error::TypeMismatch {
                name: name.into(),
                expected: expected.into(),
                found: header::unpack(&root.type_name),
                difference: layout::difference(layout, &there),
            });
        }
        Ok(root.offset.load(Relaxed))
    }

    /// Checks that the region describes fingerprint `tag` as `T`'s layout (not another
    /// layout whose fingerprint collides with it); remembered per thread, mapping and type.
    fn check_described<T: ShmSafe>(&self, tag: u64) -> Result<()> {
        thread_local! {
            static CHECKED: std::cell::RefCell<std::collections::HashSet<CheckedKey, KeyHash>> =
                std::cell::RefCell::new(std::collections::HashSet::default());
        }
        // The mapping's serial, not its address: a region dropped and another mapped into the
        // freed `Inner` would otherwise inherit the checks done on the first.
        let key = (
            self.inner.serial,
            tag,
            T::LAYOUT as *const TypeLayout as usize,
        );
        if CHECKED.try_with(|c| c.borrow().contains(&key)) == Ok(true) {
            return Ok(());
        }
        match self.view().described_as(tag, T::LAYOUT) {
            types::Described::Same => {}
            types::Described::Other => {
                return Err(Error::LayoutCollision {
                    type_name: std::any::type_name::<T>().into(),
                })
            }
            types::Described::Missing => {
                let reason = match crate::layout::encode(T::LAYOUT) {
                    Err(why) => why.to_string(),
                    Ok(_) => "the region stores no description of the type of the object \
                              there (its type registry is damaged)"
                        .into(),
                };
                return Err(Error::TypeNotDescribed {
                    type_name: std::any::type_name::<T>().into(),
                    reason,
                });
            }
        }
        let _ = CHECKED.try_with(|c| c.borrow_mut().insert(key));
        Ok(())
    }

    /// Finds the object published as `name`, checking that it has `T`'s layout (compared
    /// structurally, see [`layout`]: the same struct compiled into another
    /// program under another path is found; a changed field is not). A mismatch is
    /// [`Error::TypeMismatch`], naming both types and the first field that differs.
    pub fn lookup<T: ShmSafe>(&self, name: &str) -> Result<&T> {
        let offset = self.root_offset(
            name,
            (layout_of::<T>().tag, T::LAYOUT),
            std::any::type_name::<T>(),
        )?;
        self.get(ShmPtr::from_offset(offset))
    }

    /// Finds the (futex) lock set published as `name`.
    pub fn lookup_lock_set(&self, name: &str) -> Result<&LockSet> {
        self.lookup_lock_set_with::<Futex>(name)
    }

    /// Finds the lock set of backend `R` published as `name`; a set of another backend is
    /// [`Error::TypeMismatch`].
    pub fn lookup_lock_set_with<R: RawLock>(&self, name: &str) -> Result<&LockSet<R>> {
        let layout = layout_of::<LockSetHead<R>>();
        let expected = format!("lockkit::LockSet<{}>", R::LAYOUT_NAME);
        let offset = self.root_offset(name, (layout.tag, LockSetHead::<R>::LAYOUT), &expected)?;
        let heap = self.heap();
        self.check_live(offset, layout)?;
        self.check_described::<LockSetHead<R>>(layout.tag)?;
        // SAFETY: a live block tagged as a lock-set head of this backend.
        let head: &LockSetHead<R> = unsafe { self.object(offset) };
        let len = head.len.load(Relaxed);
        let room = (heap.capacity(offset)? - layout.size) / lock_size::<R>();
        if len == 0 || len > room {
            return Err(Error::CorruptRegion {
                detail: format!("lock set {name:?} claims {len} locks but has room for {room}"),
            });
        }
        // SAFETY: the block has room for `len` locks after the head, zeroed at allocation.
        Ok(LockSet::from_slice(unsafe {
            self.lock_slice(offset, len as usize)
        }))
    }
}

/// Refuses a type with drop glue, at compile time (the user's call is named in the note
/// "the above error was encountered while instantiating").
const fn assert_no_drop<T>() {
    assert!(
        !std::mem::needs_drop::<T>(),
        "this type has a Drop impl (or a field with one), and shared objects are never \
         dropped, only freed (another process may still use them): remove the Drop impl and \
         release what it held explicitly before `free`"
    )
}

fn clear_root(root: &header::Root) {
    for w in &root.name {
        w.store(0, Relaxed);
    }
}

fn root_key(name: &str) -> Result<[u64; ROOT_NAME_LEN / 8]> {
    let invalid = |reason| Error::InvalidName {
        name: name.into(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("a root name cannot be empty"));
    }
    if name.len() >= ROOT_NAME_LEN {
        return Err(invalid("a root name has at most 31 bytes"));
    }
    if name.contains('\0') {
        return Err(invalid("it contains a NUL byte"));
    }
    Ok(header::pack(name.as_bytes()))
}

fn find_root<'h>(roots: &'h [header::Root], key: &[u64]) -> Option<&'h header::Root> {
    roots
        .iter()
        .find(|r| r.name.iter().zip(key).all(|(w, k)| w.load(Relaxed) == *k))
}

pub(super) fn page_round(size: usize) -> Result<usize> {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
    size.checked_next_multiple_of(page)
        .ok_or(Error::OutOfMemory {
            requested: size,
            largest_free: 0,
        })
}

impl fmt::Debug for ShmRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShmRegion")
            .field("name", &self.inner.name)
            .field("size", &self.size())
            .finish_non_exhaustive()
    }
}

/// What [`ShmRegion::check_described`] remembers: (mapping serial, type tag, `T::LAYOUT`'s
/// address).
type CheckedKey = (u64, u64, usize);

/// The hasher of that per-thread set: one multiply per word. Every `get` looks the set up,
/// and SipHash took a third of a small `get`'s time; its resistance to chosen keys is not
/// needed here, as the key's tag has already been compared equal to `T`'s own and the other
/// two parts come from this process.
type KeyHash = std::hash::BuildHasherDefault<WordHasher>;

#[derive(Default)]
struct WordHasher(u64);

impl std::hash::Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}
