//! The region header at offset 0: identity (magic, version, sizes, a checksum over them),
//! the allocator's state, and the table of named roots.
//!
//! Every field is an atomic, so a header that another process scribbles on is still sound to
//! read; the identity fields are written once, before `state` turns `READY`, and an opener
//! checks them from a private copy (read with `pread`) before it maps anything.

use std::hash::Hasher;
use std::mem::{offset_of, size_of};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};

use crate::lock_set::StableHasher;
use crate::{Error, GenLock, Result};

pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"LOCKKIT\0");
/// Bump whenever the header, block or root layout changes, or the layout of something the
/// report reads without a type (6: lock-set entries of 128 bytes on x86_64 and aarch64; 7:
/// lock words name owner ids handed out by the header's id area, not thread ids).
pub(crate) const LAYOUT_VERSION: u32 = 9;
const READY: u32 = 0x5245_4459;
pub(crate) const NBINS: usize = 48;
pub(crate) const NROOTS: usize = 32;
pub(crate) const ROOT_NAME_LEN: usize = 32;
pub(crate) const ROOT_TYPE_LEN: usize = 64;
/// The smallest heap worth having.
pub(crate) const MIN_HEAP: usize = 4096;

#[repr(C)]
pub(crate) struct Header {
    magic: AtomicU64,
    version: AtomicU32,
    header_size: AtomicU32,
    total_size: AtomicU64,
    heap_start: AtomicU64,
    heap_end: AtomicU64,
    check: AtomicU64,
    state: AtomicU32,
    /// The creating process, as its pid namespace numbers it: for a person reading the
    /// bytes. Nothing judges by it (a region is named only once it is complete, so no
    /// opener needs to know whether its creator lives).
    pub(crate) creator_pid: AtomicU32,
    _reserved: [AtomicU32; 3],
    /// Guards the allocator and the root table.
    pub(crate) alloc_lock: AllocLock,
    /// The next allocation generation (never 0), so a stale handle cannot free a block that
    /// was freed and handed out again.
    pub(crate) next_gen: AtomicU64,
    /// Bytes in used blocks, headers included.
    pub(crate) used: AtomicU64,
    /// Number of live allocations.
    pub(crate) live: AtomicU64,
    /// Bytes of the type registry (`shm/types.rs`) in use, published with `Release` after
    /// the entry they cover is written.
    pub(crate) types_used: AtomicU64,
    /// Entries of the lock-site table (`shm/sites.rs`) claimed so far.
    pub(crate) sites_used: AtomicU64,
    /// Heads of the free lists, by size class (0 = empty).
    pub(crate) bins: [AtomicU64; NBINS],
    pub(crate) roots: [Root; NROOTS],
    /// Where owner ids come from (`crate::liveness`): every lock word in the region names its
    /// holder by one.
    pub(crate) owners: crate::liveness::Area,
}

/// Room for the allocator's `GenLock` whether or not it carries `lock-debug` words: the
/// header's layout must not depend on a cargo feature, or a program built without it could
/// not even open (or inspect) a region made by one built with it.
#[repr(C, align(8))]
pub(crate) struct AllocLock([AtomicU64; 3]);

impl AllocLock {
    pub(crate) fn get(&self) -> &GenLock {
        const {
            assert!(
                std::mem::size_of::<GenLock>() <= std::mem::size_of::<AllocLock>()
                    && std::mem::align_of::<GenLock>() <= std::mem::align_of::<AllocLock>()
            )
        };
        // SAFETY: a futex GenLock is atomics only (valid for any bytes, zero = unlocked), and
        // fits in this slot with its alignment (checked above).
        unsafe { &*(self as *const AllocLock as *const GenLock) }
    }
}

/// A named root: where an object is and what type it was published as.
#[repr(C)]
pub(crate) struct Root {
    /// The name, zero-padded; all zero means the slot is free.
    pub(crate) name: [AtomicU64; ROOT_NAME_LEN / 8],
    pub(crate) offset: AtomicU64,
    pub(crate) tag: AtomicU64,
    /// The published type's name, zero-padded and cut to fit, for error messages.
    pub(crate) type_name: [AtomicU64; ROOT_TYPE_LEN / 8],
}

pub(crate) const HEADER_SIZE: usize = size_of::<Header>();
/// Where the allocator's block-start bitmap starts: after the header, on a cache line. The
/// heap follows the bitmap; no block, and so no safe handle, covers either.
pub(crate) const BITMAP_START: usize = (HEADER_SIZE + 63) & !63;
/// The smallest type registry (after the heap).
const MIN_TYPES: u64 = 4096;
/// The smallest table of lock sites (after the lock-order table, to the region's end).
const MIN_SITES: u64 = 4096;
/// The smallest lock-order table (after the type registry).
const MIN_ORDER: u64 = 4096;
/// The smallest region: header, a bitmap line, the smallest heap, registry, lock-order
/// table and site table.
pub(crate) const MIN_TOTAL: usize =
    BITMAP_START + 64 + MIN_HEAP + (MIN_TYPES + MIN_ORDER + MIN_SITES) as usize;

/// The identity fields, as read from a file or written at creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) total_size: u64,
    pub(crate) heap_start: u64,
    pub(crate) heap_end: u64,
}

fn checksum(version: u32, header_size: u32, id: &Identity) -> u64 {
    let mut h = StableHasher::new();
    h.write_u64(MAGIC);
    h.write_u32(version);
    h.write_u32(header_size);
    h.write_u64(id.total_size);
    h.write_u64(id.heap_start);
    h.write_u64(id.heap_end);
    h.finish()
}

impl Identity {
    /// The layout of a new region of `total` bytes.
    pub(crate) fn for_size(total: usize) -> Result<Identity> {
        if total < MIN_TOTAL {
            return Err(Error::RegionTooSmall {
                requested: total,
                minimum: MIN_TOTAL,
            });
        }
        // One bit per heap granule, for every granule the rest of the region could hold
        // (slightly more than the heap will have), in whole cache lines.
        let units = (total - BITMAP_START) as u64 / super::heap::GRAN;
        let bitmap_bytes = units.div_ceil(8).next_multiple_of(64);
        Ok(Identity {
            total_size: total as u64,
            heap_start: BITMAP_START as u64 + bitmap_bytes,
            heap_end: (total as u64
                - Identity::types_bytes(total as u64)
                - Identity::order_bytes(total as u64)
                - Identity::sites_bytes(total as u64))
                & !(super::heap::GRAN - 1),
        })
    }

    /// The size of the table of lock sites (`lock-debug`): 1/128 of the region, between
    /// 4 KiB and 256 KiB (32 to 2048 distinct sites).
    fn sites_bytes(total: u64) -> u64 {
        (total / 128).clamp(MIN_SITES, 1 << 18) & !127
    }

    /// Where the table of lock sites lies: at the region's end.
    pub(crate) fn sites_area(&self) -> (u64, u64) {
        (
            self.total_size - Identity::sites_bytes(self.total_size),
            self.total_size,
        )
    }

    /// The size of the lock-order table (`lock-debug`, `lock_order`): 1/128 of the region,
    /// between 4 KiB and 256 KiB (64 to 4096 recorded lock pairs).
    fn order_bytes(total: u64) -> u64 {
        (total / 128).clamp(MIN_ORDER, 1 << 18) & !63
    }

    /// Where the lock-order table lies: between the type registry and the site table.
    pub(crate) fn order_area(&self) -> (u64, u64) {
        let end = self.sites_area().0;
        (end - Identity::order_bytes(self.total_size), end)
    }

    /// The size of the type registry of a region of `total` bytes: 1/64 of it, between
    /// 4 KiB and 1 MiB (thousands of described types).
    pub(crate) fn types_bytes(total: u64) -> u64 {
        (total / 64).clamp(MIN_TYPES, 1 << 20) & !63
    }

    /// Where the type registry lies: from the heap's end to the lock-order table.
    pub(crate) fn types_area(&self) -> (u64, u64) {
        (self.heap_end, self.order_area().0)
    }
}

impl Header {
    /// Writes a fresh header into zeroed memory and marks it ready. The heap is initialised
    /// by the caller before, so that `READY` means "everything is usable".
    pub(crate) fn write_identity(&self, id: &Identity) {
        self.version.store(LAYOUT_VERSION, Relaxed);
        self.header_size.store(HEADER_SIZE as u32, Relaxed);
        self.total_size.store(id.total_size, Relaxed);
        self.heap_start.store(id.heap_start, Relaxed);
        self.heap_end.store(id.heap_end, Relaxed);
        self.next_gen.store(1, Relaxed);
        self.check
            .store(checksum(LAYOUT_VERSION, HEADER_SIZE as u32, id), Relaxed);
    }

    /// Records the creator before anything else is written.
    pub(crate) fn write_creator(&self, pid: u32) {
        self.creator_pid.store(pid, Release);
    }

    /// Publishes the finished region: the magic last but for the state, so an opener reading
    /// a half-written header sees "no magic yet" (wait) rather than fields that disagree.
    pub(crate) fn mark_ready(&self) {
        self.magic.store(MAGIC, Release);
        self.state.store(READY, Release);
    }
}

fn field<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    buf[at..at + N]
        .try_into()
        .expect("caller checked the length")
}
fn u32_at(buf: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(field(buf, at))
}
fn u64_at(buf: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(field(buf, at))
}

/// Judges the first `buf.len()` bytes of an object of `file_len` bytes: the region's layout,
/// or why it is not a region this lockkit can use. Reads nothing out of `buf`, whatever it
/// holds.
///
/// A region gets its name only once it is `READY` (see `map.rs`), so whatever is at a name
/// is final: nothing here waits, and an unfinished header is not a creator at work but
/// somebody else's file, or damage.
pub(crate) fn inspect(name: &str, buf: &[u8], file_len: u64) -> Result<Identity> {
    let name = name.to_owned();
    let truncated = |expected: u64| Error::Truncated {
        name: name.clone(),
        expected,
        actual: file_len,
    };
    let corrupt = |detail: String| {
        Err(Error::CorruptHeader {
            name: name.clone(),
            detail,
        })
    };
    if buf.len() < 8 || u64_at(buf, offset_of!(Header, magic)) != MAGIC {
        return Err(Error::NotLockkitRegion { name });
    }
    if buf.len() < offset_of!(Header, header_size) {
        return Err(truncated(HEADER_SIZE as u64));
    }
    let version = u32_at(buf, offset_of!(Header, version));
    if version != LAYOUT_VERSION {
        return Err(Error::VersionMismatch {
            name,
            found: version,
            expected: LAYOUT_VERSION,
        });
    }
    if buf.len() < HEADER_SIZE {
        return Err(truncated(HEADER_SIZE as u64));
    }
    let header_size = u32_at(buf, offset_of!(Header, header_size));
    let id = Identity {
        total_size: u64_at(buf, offset_of!(Header, total_size)),
        heap_start: u64_at(buf, offset_of!(Header, heap_start)),
        heap_end: u64_at(buf, offset_of!(Header, heap_end)),
    };
    if u64_at(buf, offset_of!(Header, check)) != checksum(version, header_size, &id) {
        return corrupt("the checksum over its size fields does not match".into());
    }
    if header_size as usize != HEADER_SIZE {
        return corrupt(format!("header size {header_size}, expected {HEADER_SIZE}"));
    }
    match Identity::for_size(id.total_size.min(usize::MAX as u64) as usize) {
        Ok(expected) if expected == id => {}
        _ => {
            return corrupt(format!(
                "inconsistent layout: total {} bytes, heap {}..{}",
                id.total_size, id.heap_start, id.heap_end
            ))
        }
    }
    if u32_at(buf, offset_of!(Header, state)) != READY {
        return corrupt(
            "it is not marked ready (its creator never finished initialising it, or it was \
             damaged)"
                .into(),
        );
    }
    if file_len < id.total_size {
        return Err(truncated(id.total_size));
    }
    Ok(id)
}

/// Packs `s` (cut to `N * 8` bytes) into zero-padded words.
pub(crate) fn pack<const N: usize>(s: &[u8]) -> [u64; N] {
    let mut words = [0u64; N];
    for (i, chunk) in s.chunks(8).take(N).enumerate() {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        words[i] = u64::from_ne_bytes(w);
    }
    words
}

/// The inverse of [`pack`], stopping at the first zero byte.
pub(crate) fn unpack(words: &[AtomicU64]) -> String {
    let bytes: Vec<u8> = words
        .iter()
        .flat_map(|w| w.load(Relaxed).to_ne_bytes())
        .take_while(|&b| b != 0)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_bytes(total: usize) -> Vec<u8> {
        // SAFETY: Header is all atomics, for which zero bytes are valid.
        let h: Header = unsafe { std::mem::zeroed() };
        h.write_identity(&Identity::for_size(total).unwrap());
        h.mark_ready();
        // SAFETY: reading the bytes of a fully initialised repr(C) struct of integers.
        unsafe { std::slice::from_raw_parts(&h as *const Header as *const u8, HEADER_SIZE) }
            .to_vec()
    }

    #[test]
    fn a_fresh_header_is_valid() {
        let b = header_bytes(1 << 20);
        assert!(inspect("/t", &b, 1 << 20).is_ok());
    }

    #[test]
    fn any_flipped_identity_byte_is_caught() {
        let b = header_bytes(1 << 20);
        for at in 0..offset_of!(Header, state) {
            let mut c = b.clone();
            c[at] ^= 0x40;
            assert!(inspect("/t", &c, 1 << 20).is_err(), "byte {at}");
        }
    }

    #[test]
    fn every_prefix_is_judged_without_panicking() {
        let b = header_bytes(1 << 20);
        for n in 0..b.len() {
            assert!(inspect("/t", &b[..n], n as u64).is_err());
        }
    }

    #[test]
    fn names_round_trip_through_words() {
        let w: [u64; 4] = pack(b"registrar");
        let a = w.map(AtomicU64::new);
        assert_eq!(unpack(&a), "registrar");
    }
}
