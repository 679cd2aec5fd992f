//! Where a published object's layout description lives: a block of its own in the heap,
//! named by the root (`Root::desc`), freed with the root. The block is a length word and the
//! text in 8-byte words, all read and written as atomics: another process may scribble on
//! it, and a reader copies out whatever is there (decoding accepts any bytes).

use std::mem::size_of;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::header::Root;
use super::heap::Layout;
use super::ShmRegion;
use crate::layout::TypeLayout;
use crate::Result;

/// The type tag of description blocks: no `ShmSafe` type has this layout, so `get` and
/// `lookup` never hand one out.
const DESC_TAG: u64 = TypeLayout::opaque::<u64>("lockkit::LayoutDescription/1", "").fingerprint();

const WORD: u64 = size_of::<AtomicU64>() as u64;

/// What every description block is at least: its length word.
const DESC_LAYOUT: Layout = Layout {
    size: WORD,
    align: WORD,
    tag: DESC_TAG,
};

impl ShmRegion {
    /// The word at `offset` (a multiple of 8 inside a live block of this region).
    ///
    /// # Safety
    /// `offset..offset + 8` lies inside a live block's payload.
    unsafe fn word_at(&self, offset: u64) -> &AtomicU64 {
        // SAFETY: per the contract: in bounds, 8-aligned (payloads are), and any bytes are a
        // valid AtomicU64.
        unsafe { self.object::<AtomicU64>(offset) }
    }

    /// Stores `text` in a new block; the caller holds the allocator lock.
    pub(super) fn store_description(&self, text: &[u8]) -> Result<(u64, u64)> {
        let words = (text.len() as u64).div_ceil(WORD);
        let (offset, gen) = self.heap().alloc(Layout {
            size: WORD * (1 + words),
            align: WORD,
            tag: DESC_TAG,
        })?;
        // SAFETY: the block was just allocated with room for the length and `words` words.
        unsafe { self.word_at(offset) }.store(text.len() as u64, Relaxed);
        for (i, chunk) in text.chunks(WORD as usize).enumerate() {
            let mut w = [0u8; WORD as usize];
            w[..chunk.len()].copy_from_slice(chunk);
            // SAFETY: word i + 1 is inside the block (see above).
            unsafe { self.word_at(offset + WORD * (1 + i as u64)) }
                .store(u64::from_le_bytes(w), Relaxed);
        }
        Ok((offset, gen))
    }

    /// The description `root` names, or nothing if it names none or the block is not a live
    /// description; the caller holds the allocator lock.
    pub(super) fn read_description(&self, root: &Root) -> Vec<u8> {
        let offset = root.desc.load(Relaxed);
        let heap = self.heap();
        let live = offset != 0 && heap.check_live(offset, DESC_LAYOUT).is_ok();
        let Some(capacity) = live.then(|| heap.capacity(offset).ok()).flatten() else {
            return Vec::new();
        };
        // SAFETY: a live description block has at least its length word.
        let len = unsafe { self.word_at(offset) }.load(Relaxed);
        let len = len
            .min(capacity - WORD)
            .min(crate::layout::MAX_DESCRIPTION as u64);
        let mut out = Vec::with_capacity(len as usize);
        for i in 0..len.div_ceil(WORD) {
            // SAFETY: word i + 1 ends within `capacity` (len was clamped to it).
            let w = unsafe { self.word_at(offset + WORD * (1 + i)) }.load(Relaxed);
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.truncate(len as usize);
        out
    }

    /// Empties a root slot (its name first, so that it is gone at once) and frees its
    /// description; the caller holds the allocator lock.
    pub(super) fn clear_root(&self, root: &Root) {
        for w in &root.name {
            w.store(0, Relaxed);
        }
        let desc = root.desc.swap(0, Relaxed);
        // Only a description block is freed: a root damaged to name another object (with
        // its generation) must not free that object. One another process freed or damaged
        // is simply forgotten.
        if desc != 0 && self.heap().check_live(desc, DESC_LAYOUT).is_ok() {
            let _ = self.heap().free(desc, root.desc_gen.load(Relaxed));
        }
    }
}
