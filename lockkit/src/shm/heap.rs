//! The allocator inside a region: boundary-tagged blocks, free lists by size class, and
//! coalescing of neighbours on free, so alloc/free churn does not fragment the heap away.
//!
//! # Blocks
//!
//! The heap `[start, end)` is a sequence of blocks, each a multiple of [`GRAN`] bytes, each
//! starting with four words:
//!
//! ```text
//! +0   size | USED      size of the whole block, header included
//! +8   prev_size        size of the block just before it (0 for the first)
//! +16  used: type tag   free: next free block in its size class (0 = none)
//! +24  used: generation free: previous free block in its size class (0 = none)
//! +32  payload (used blocks)
//! ```
//!
//! Invariants (between operations, under the region's allocator lock): blocks tile the heap
//! exactly; no two free blocks are neighbours; every free block is on the list of its size
//! class; `prev_size` matches the previous block's size; the block-start bitmap has a bit set
//! exactly for the start of every used block.
//!
//! # The block-start bitmap
//!
//! Block headers live in the heap, where a used block's neighbour could in principle write
//! (its payload is the user's), and a freed block's header stays behind inside the block it
//! merged into. So whether an offset is a live object is never decided by a header alone: a
//! bitmap between the region header and the heap, outside every block, has one bit per
//! granule, set by `alloc` for the block it hands out and cleared by `free` before anything
//! else changes. `check_live` (behind `get` and `lookup`) and `free` require the bit: a
//! header forged inside an object's data, or one left behind by a merge, is refused.
//!
//! Every offset read from the heap is checked before it is followed, and list walks are
//! bounded, so a corrupted heap yields [`Error::CorruptRegion`], never an access outside the
//! mapping or an endless loop. Words are accessed as atomics: another process writing them
//! without the lock is a bug in that process, not undefined behaviour in this one.

use std::sync::atomic::{AtomicU64, Ordering::*};

use super::header::{Header, NBINS};
use crate::{Error, Result};

/// A block's generation: a counter in the low bits, the allocating thread's owner id
/// (`crate::liveness`) above, for `stats` to find what dead processes left behind.
const GEN_OWNER_SHIFT: u32 = 64 - crate::liveness::ID_BITS;
const GEN_COUNTER: u64 = (1 << GEN_OWNER_SHIFT) - 1;

/// Block granularity and header size.
pub(crate) const GRAN: u64 = 32;
pub(super) const HDR: u64 = 32;
const USED: u64 = 1;

fn corrupt(detail: String) -> Error {
    Error::CorruptRegion { detail }
}

/// What a caller needs to know about a type stored in a block.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    pub(crate) size: u64,
    pub(crate) align: u64,
    pub(crate) tag: u64,
}

/// A view of the heap of one mapped region.
pub(crate) struct Heap<'a> {
    base: *mut u8,
    len: u64,
    hdr: &'a Header,
    start: u64,
    end: u64,
}

/// Where the block-start bitmap begins (it ends where the heap starts).
const BITMAP: u64 = super::header::BITMAP_START as u64;

/// Allocator figures at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapStats {
    /// Bytes in used blocks, block headers included.
    pub used: usize,
    /// Bytes in free blocks.
    pub free: usize,
    /// The largest single free block, header included (an allocation of up to this minus
    /// 32 bytes succeeds).
    pub largest_free: usize,
    /// Number of free blocks (1 when the free space is whole).
    pub free_blocks: usize,
    /// Number of live allocations.
    pub allocations: usize,
    /// Live allocations made by processes that have died or called `exec` since, by the
    /// kernel's word (each allocation records its thread's owner id, whose lock the kernel
    /// drops at death or exec; see [`Owner`](crate::Owner)): memory a crashed (or finished)
    /// process never freed. Nobody else can know whether it is still in use, so it is
    /// reported, not reclaimed (as Kamailio does).
    pub orphaned_allocations: usize,
    /// The bytes those hold, block headers included.
    pub orphaned_bytes: usize,
}

fn bin(size: u64) -> usize {
    let units = size / GRAN;
    ((63 - units.max(1).leading_zeros()) as usize).min(NBINS - 1)
}

impl<'a> Heap<'a> {
    /// # Safety
    /// `base` is the start of a live mapping of `len` bytes that outlives `'a`, and `hdr` is
    /// its header. `start..end` lies within it (the header identity was validated).
    pub(crate) unsafe fn new(
        base: *mut u8,
        len: usize,
        hdr: &'a Header,
        start: u64,
        end: u64,
    ) -> Self {
        debug_assert!(start <= end && end <= len as u64);
        Heap {
            base,
            len: len as u64,
            hdr,
            start,
            end,
        }
    }

    fn word(&self, off: u64) -> Result<&'a AtomicU64> {
        if off % 8 != 0 || off.checked_add(8).is_none_or(|e| e > self.len) {
            return Err(corrupt(format!("word offset {off:#x} outside the region")));
        }
        // SAFETY: `off..off+8` is inside the live mapping and 8-aligned (the mapping is
        // page-aligned); AtomicU64 accepts any bit pattern and tolerates concurrent access.
        Ok(unsafe { &*(self.base.add(off as usize) as *const AtomicU64) })
    }

    /// The `n` words from `off` on, checked to lie inside the region as one range.
    fn words(&self, off: u64, n: u64) -> Result<&'a [AtomicU64]> {
        let fits = n
            .checked_mul(8)
            .and_then(|bytes| off.checked_add(bytes))
            .is_some_and(|e| e <= self.len);
        if off % 8 != 0 || !fits {
            return Err(corrupt(format!(
                "{n} words at {off:#x} run outside the region"
            )));
        }
        // SAFETY: `off..off + 8n` is inside the live mapping and 8-aligned (the mapping is
        // page-aligned); AtomicU64 accepts any bit pattern and tolerates concurrent access.
        Ok(unsafe {
            std::slice::from_raw_parts(self.base.add(off as usize) as *const AtomicU64, n as usize)
        })
    }

    /// Checks that `b` can be a block start and returns its size and flags.
    fn block(&self, b: u64) -> Result<(u64, bool)> {
        if b < self.start || b >= self.end || (b - self.start) % GRAN != 0 {
            return Err(corrupt(format!("block offset {b:#x} is not a block start")));
        }
        let sf = self.word(b)?.load(Relaxed);
        let size = sf & !(GRAN - 1);
        if size < GRAN || sf & (GRAN - 1) & !USED != 0 || size > self.end - b {
            return Err(corrupt(format!(
                "block at {b:#x} has a bad size word {sf:#x}"
            )));
        }
        Ok((size, sf & USED != 0))
    }

    /// The bitmap word and bit for the block starting at `b` (a checked block start).
    fn live_bit(&self, b: u64) -> Result<(&'a AtomicU64, u64)> {
        let unit = (b - self.start) / GRAN;
        let word = BITMAP + unit / 64 * 8;
        if word + 8 > self.start {
            return Err(corrupt(format!("block {b:#x} has no bit in the bitmap")));
        }
        Ok((self.word(word)?, 1 << (unit % 64)))
    }

    /// Every live object as (payload offset, type tag, payload capacity), found through the
    /// block-start bitmap, without the allocator lock: for the lock report, which must work
    /// while the application is wedged (perhaps inside the allocator). Blocks that change
    /// during the walk may be missed or seen half-changed; a header that does not check out
    /// is skipped. The walk is bounded by the bitmap's size.
    pub(crate) fn live_blocks(&self) -> Vec<(u64, u64, u64)> {
        let mut out = Vec::new();
        let units = (self.end - self.start) / GRAN;
        let mut unit = 0;
        while unit < units {
            let at = BITMAP + unit / 64 * 8;
            let Ok(w) = self.word(at).and_then(|w| {
                if at + 8 > self.start {
                    Err(corrupt("bitmap overrun".into()))
                } else {
                    Ok(w)
                }
            }) else {
                break;
            };
            let mut bits = w.load(Relaxed);
            while bits != 0 {
                let bit = u64::from(bits.trailing_zeros());
                bits &= bits - 1;
                let b = self.start + (unit + bit) * GRAN;
                if let (Ok((size, true)), Ok(tag)) = (self.block(b), self.word(b + 16)) {
                    out.push((b + HDR, tag.load(Relaxed), size - HDR));
                }
            }
            unit += 64;
        }
        out
    }

    /// Whether the bitmap says a used block starts at `b`. `Acquire`: what was written into
    /// the object before its bit was set ([`Heap::publish`]) is seen by whoever sees the bit.
    fn is_live_start(&self, b: u64) -> Result<bool> {
        let (w, bit) = self.live_bit(b)?;
        Ok(w.load(Acquire) & bit != 0)
    }

    fn set_live_start(&self, b: u64, live: bool) -> Result<()> {
        let (w, bit) = self.live_bit(b)?;
        if live {
            w.fetch_or(bit, Release);
        } else {
            w.fetch_and(!bit, Relaxed);
        }
        Ok(())
    }

    /// Makes the block `alloc` handed out at `payload` an object, once its bytes are written:
    /// until then no `get` or `lookup` (which take no lock) can find it, so none sees bytes
    /// its type has not been given yet. The caller holds the allocator lock since `alloc`.
    pub(crate) fn publish(&self, payload: u64) -> Result<()> {
        self.set_live_start(payload - HDR, true)
    }

    fn set_block(&self, b: u64, size: u64, used: bool) -> Result<()> {
        self.word(b)?.store(size | u64::from(used), Relaxed);
        Ok(())
    }

    fn set_prev_size_after(&self, b: u64, size: u64) -> Result<()> {
        let next = b + size;
        if next < self.end {
            self.word(next + 8)?.store(size, Relaxed);
        }
        Ok(())
    }

    /// Sets up one free block spanning the whole heap.
    pub(crate) fn format(&self) -> Result<()> {
        let size = self.end - self.start;
        self.set_block(self.start, size, false)?;
        self.word(self.start + 8)?.store(0, Relaxed);
        for b in &self.hdr.bins {
            b.store(0, Relaxed);
        }
        let mut w = BITMAP;
        while w < self.start {
            self.word(w)?.store(0, Relaxed);
            w += 8;
        }
        self.push(self.start, size)
    }

    fn push(&self, b: u64, size: u64) -> Result<()> {
        let head = &self.hdr.bins[bin(size)];
        let first = head.load(Relaxed);
        self.word(b + 16)?.store(first, Relaxed);
        self.word(b + 24)?.store(0, Relaxed);
        if first != 0 {
            self.block(first)?;
            self.word(first + 24)?.store(b, Relaxed);
        }
        head.store(b, Relaxed);
        Ok(())
    }

    fn remove(&self, b: u64, size: u64) -> Result<()> {
        let next = self.word(b + 16)?.load(Relaxed);
        let prev = self.word(b + 24)?.load(Relaxed);
        if prev != 0 {
            self.block(prev)?;
            self.word(prev + 16)?.store(next, Relaxed);
        } else {
            let head = &self.hdr.bins[bin(size)];
            if head.load(Relaxed) != b {
                return Err(corrupt(format!("free block {b:#x} is not on its list")));
            }
            head.store(next, Relaxed);
        }
        if next != 0 {
            self.block(next)?;
            self.word(next + 24)?.store(prev, Relaxed);
        }
        Ok(())
    }

    /// Calls `f` on every free block of list `i`, stopping early when it returns `Some`.
    fn walk<T>(&self, i: usize, mut f: impl FnMut(u64, u64) -> Option<T>) -> Result<Option<T>> {
        let limit = (self.end - self.start) / GRAN;
        let mut b = self.hdr.bins[i].load(Relaxed);
        let mut steps = 0;
        while b != 0 {
            steps += 1;
            let (size, used) = self.block(b)?;
            if used || steps > limit {
                return Err(corrupt(format!("free list {i} is damaged at {b:#x}")));
            }
            if let Some(t) = f(b, size) {
                return Ok(Some(t));
            }
            b = self.word(b + 16)?.load(Relaxed);
        }
        Ok(None)
    }

    /// Allocates a block for `layout` and returns `(payload offset, generation)`. The
    /// payload's bytes are left as they were; the caller initialises them and then calls
    /// [`Heap::publish`], under the same hold of the allocator lock.
    pub(crate) fn alloc(&self, layout: Layout) -> Result<(u64, u64)> {
        let oom = |h: &Self| -> Result<(u64, u64)> {
            Err(Error::OutOfMemory {
                requested: layout.size as usize,
                largest_free: h.stats()?.0.largest_free.saturating_sub(HDR as usize),
            })
        };
        let Some(need) = layout
            .size
            .checked_add(HDR + GRAN - 1)
            .map(|n| n & !(GRAN - 1))
        else {
            return oom(self);
        };
        let align = layout.align.max(1);
        let fit = |b: u64, size: u64| {
            let payload = (b + HDR).checked_next_multiple_of(align)?;
            let lead = payload - HDR - b;
            (lead.checked_add(need)? <= size).then_some((b, size, lead))
        };
        let mut found = None;
        for i in bin(need)..NBINS {
            found = self.walk(i, fit)?;
            if found.is_some() {
                break;
            }
        }
        let Some((b, size, lead)) = found else {
            return oom(self);
        };
        self.check_free_block(b, size, lead + need)?;
        self.remove(b, size)?;
        let (b, size) = if lead > 0 {
            // Alignment left a gap at the front: it becomes a free block of its own. Its
            // predecessor is not free (b was free, and free blocks never touch). The new
            // block's header is written before `b` shrinks, so the size words tile the heap
            // at every instant (what `rebuild` relies on after a crash).
            let nb = b + lead;
            self.set_block(nb, size - lead, false)?;
            self.word(nb + 8)?.store(lead, Relaxed);
            self.set_block(b, lead, false)?;
            self.push(b, lead)?;
            (nb, size - lead)
        } else {
            (b, size)
        };
        let used = if size - need >= GRAN {
            let tail = b + need;
            self.set_block(tail, size - need, false)?;
            self.word(tail + 8)?.store(need, Relaxed);
            self.set_prev_size_after(tail, size - need)?;
            self.push(tail, size - need)?;
            need
        } else {
            self.set_prev_size_after(b, size)?;
            size
        };
        self.set_block(b, used, true)?;
        // The generation's top bits name the allocating thread by its owner id, whose lock
        // the kernel drops when its process dies: `stats` finds what dead processes left.
        let counter = self.hdr.next_gen.fetch_add(1, Relaxed) & GEN_COUNTER;
        let owner = crate::liveness::id_at(self.base as usize);
        let gen = counter.max(1) | u64::from(owner) << GEN_OWNER_SHIFT;
        self.word(b + 16)?.store(layout.tag, Relaxed);
        self.word(b + 24)?.store(gen, Relaxed);
        // The bitmap bit is set by `publish`, once the caller has written the object.
        self.hdr.used.fetch_add(used, Relaxed);
        self.hdr.live.fetch_add(1, Relaxed);
        Ok((b + HDR, gen))
    }

    /// Frees the block whose payload is at `payload`, if it is live with generation `gen`.
    ///
    /// Everything is checked before anything changes: a block that is not live (freed
    /// already, through this handle or a copy) is [`Error::StaleHandle`] and leaves the heap
    /// and its figures as they were; neighbours that do not check out are
    /// [`Error::CorruptRegion`], also before any change.
    pub(crate) fn free(&self, payload: u64, gen: u64) -> Result<()> {
        let b = payload.checked_sub(HDR).ok_or(Error::StaleHandle)?;
        let Ok((size, used)) = self.block(b) else {
            return Err(Error::StaleHandle);
        };
        if !used || !self.is_live_start(b)? || self.word(b + 24)?.load(Relaxed) != gen {
            return Err(Error::StaleHandle);
        }
        if !self.sits_between_neighbours(b, size, true)? {
            return Err(corrupt(format!(
                "block at {b:#x} does not fit between its neighbours"
            )));
        }
        // Look at both neighbours before changing anything.
        let next = b + size;
        let next_free = if next < self.end {
            let (nsize, nused) = self.block(next)?;
            (!nused).then_some(nsize)
        } else {
            None
        };
        let psize = self.word(b + 8)?.load(Relaxed);
        let prev_free = if psize != 0 {
            let prev = b
                .checked_sub(psize)
                .ok_or_else(|| corrupt(format!("block at {b:#x} has a bad prev_size")))?;
            let (actual, pused) = self.block(prev)?;
            if actual != psize {
                return Err(corrupt(format!(
                    "prev_size of {b:#x} disagrees with {prev:#x}"
                )));
            }
            (!pused).then_some(prev)
        } else {
            None
        };
        self.set_live_start(b, false)?;
        self.hdr.used.fetch_sub(size, Relaxed);
        self.hdr.live.fetch_sub(1, Relaxed);
        let (mut b, mut size) = (b, size);
        // The freed block's header says free from here on, whatever it merges into.
        self.set_block(b, size, false)?;
        if let Some(nsize) = next_free {
            self.remove(next, nsize)?;
            size += nsize;
        }
        if let Some(prev) = prev_free {
            self.remove(prev, psize)?;
            b = prev;
            size += psize;
        }
        self.set_block(b, size, false)?;
        self.set_prev_size_after(b, size)?;
        self.push(b, size)
    }

    /// Before handing out `[b, b + carve)` of the free block `[b, b + size)`: the block must
    /// sit exactly between its neighbours (each a live block whose boundary tags agree with
    /// it) and no live object may start inside the part handed out. A scribbled free block
    /// (its size enlarged over a live neighbour, say) is [`Error::CorruptRegion`] here,
    /// never memory that overlaps a live object.
    fn check_free_block(&self, b: u64, size: u64, carve: u64) -> Result<()> {
        let bad = |what: &str| Err(corrupt(format!("free block {b:#x} ({size} bytes): {what}")));
        if self.is_live_start(b)? {
            return bad("the bitmap says a live object starts there");
        }
        let next = b + size;
        if next < self.end {
            let (_, nused) = self.block(next)?;
            if !nused || !self.is_live_start(next)? {
                return bad("the block after it is not a live object");
            }
            if self.word(next + 8)?.load(Relaxed) != size {
                return bad("the block after it records another size for it");
            }
        }
        let psize = self.word(b + 8)?.load(Relaxed);
        if psize != 0 {
            let prev = b
                .checked_sub(psize)
                .ok_or_else(|| corrupt(format!("block at {b:#x} has a bad prev_size")))?;
            let (actual, pused) = self.block(prev)?;
            if actual != psize || !pused || !self.is_live_start(prev)? {
                return bad("the block before it does not end where it starts");
            }
        } else if b != self.start {
            return bad("it has no predecessor but is not the first block");
        }
        if self.live_start_inside(b, b + carve)? {
            return bad("a live object starts inside it");
        }
        Ok(())
    }

    /// Whether the bitmap marks a live start strictly inside `(b, end)` (`b` a checked block
    /// start), looked up a bitmap word (64 granules) at a time. The words are bounds-checked
    /// once, as one slice, and OR-ed together: `get` of a 64 KiB object pays this scan (32
    /// words) on every call, and a check per word tripled its cost.
    fn live_start_inside(&self, b: u64, end: u64) -> Result<bool> {
        let first = (b - self.start) / GRAN + 1;
        let end_unit = (end.min(self.end) - self.start).div_ceil(GRAN);
        if first >= end_unit {
            return Ok(false);
        }
        let (w0, w1) = (first / 64, (end_unit - 1) / 64);
        let words = self.words(BITMAP + w0 * 8, w1 - w0 + 1)?;
        let head = !0u64 << (first % 64);
        let tail = !0u64 >> (63 - (end_unit - 1) % 64);
        let seen = match words {
            [only] => only.load(Relaxed) & head & tail,
            [first, middle @ .., last] => {
                let mut seen = first.load(Relaxed) & head | last.load(Relaxed) & tail;
                for w in middle {
                    seen |= w.load(Relaxed);
                }
                seen
            }
            [] => 0,
        };
        Ok(seen != 0)
    }

    /// Whether the used block `[b, b + size)`, which the bitmap marks live, sits where the
    /// heap's trusted boundaries allow a block: its boundary tags agree with its neighbours'
    /// as far as the next live start (or the heap's end) on each side, through at most one
    /// free block (free blocks never touch), and, with `inside_too`, no other live start lies
    /// inside it. Every caller asks for that last scan (a bitmap word per 2 KiB of the
    /// object): forgeries inside a block can anchor on each other's headers and bits and so
    /// pass their own neighbour checks, but never this block's scan (an adversarial review
    /// made `get` vouch for an object inside another with 2-3 damaged bits when `get` left
    /// the scan out). The
    /// bitmap is outside every block and the headers of live blocks outside every payload,
    /// so a header forged inside an object's data (by safe code writing its own data) and
    /// given a bitmap bit (by damage to the file) cannot meet both: `get` would otherwise
    /// vouch for it over the object around it, and `alloc` hand out memory it claims.
    ///
    /// Without the allocator lock (`get`), a neighbour being split or merged by another
    /// process can fail this for a sound block: the caller asks again under the lock.
    fn sits_between_neighbours(&self, b: u64, size: u64, inside_too: bool) -> Result<bool> {
        if inside_too && self.live_start_inside(b, b + size)? {
            return Ok(false);
        }
        // The block after it, and the one after that if it is free.
        let next = b + size;
        if next < self.end {
            if self.word(next + 8)?.load(Relaxed) != size {
                return Ok(false);
            }
            if !self.is_live_start(next)? {
                let Ok((nsize, _)) = self.block(next) else {
                    return Ok(false);
                };
                let after = next + nsize;
                if after < self.end
                    && (!self.is_live_start(after)? || self.word(after + 8)?.load(Relaxed) != nsize)
                {
                    return Ok(false);
                }
            }
        }
        // The block before it, and the one before that if it is free.
        let joins = |at: u64, psize: u64| -> Result<Option<(u64, bool)>> {
            if psize == 0 {
                return Ok((at == self.start).then_some((at, true)));
            }
            let Some(prev) = at.checked_sub(psize).filter(|&p| p >= self.start) else {
                return Ok(None);
            };
            match self.block(prev) {
                Ok((actual, _)) if actual == psize => Ok(Some((prev, self.is_live_start(prev)?))),
                _ => Ok(None),
            }
        };
        if b == self.start {
            return Ok(self.word(b + 8)?.load(Relaxed) == 0);
        }
        match joins(b, self.word(b + 8)?.load(Relaxed))? {
            Some((_, true)) => Ok(true),
            Some((prev, false)) => {
                let before = self.word(prev + 8)?.load(Relaxed);
                Ok(matches!(joins(prev, before)?, Some((_, true))))
            }
            None => Ok(false),
        }
    }

    /// Repairs the heap after a process died inside the allocator (the allocator lock told
    /// its next holder so). Every step of `alloc` and `free` changes one word at a time in an
    /// order that keeps the blocks' size words tiling the heap, and the bitmap bit of a block
    /// is set last when it is handed out and cleared first when it is freed; so the size
    /// words and the bitmap are the truth, and everything else is rebuilt from them: each
    /// block's flag and `prev_size`, neighbouring free blocks merged, the free lists, and
    /// the used and live figures. A block the dead process was being handed stays allocated
    /// (leaked), never handed out twice. Fails with `CorruptRegion` if the size words do not
    /// tile the heap (damage, not a crash).
    pub(crate) fn rebuild(&self) -> Result<()> {
        // First pass: the tiling must hold before anything is rewritten.
        let mut b = self.start;
        while b < self.end {
            let (size, _) = self.block(b)?;
            b += size;
        }
        if b != self.end {
            return Err(corrupt(format!(
                "blocks end at {b:#x}, the heap at {:#x}",
                self.end
            )));
        }
        for head in &self.hdr.bins {
            head.store(0, Relaxed);
        }
        let (mut used_bytes, mut live) = (0u64, 0u64);
        let (mut b, mut prev_size) = (self.start, 0u64);
        while b < self.end {
            let (mut size, _) = self.block(b)?;
            let used = self.is_live_start(b)?;
            if used {
                used_bytes += size;
                live += 1;
            } else {
                // Swallow the free (or never finished) blocks that follow.
                while b + size < self.end && !self.is_live_start(b + size)? {
                    let (more, _) = self.block(b + size)?;
                    size += more;
                }
            }
            self.set_block(b, size, used)?;
            self.word(b + 8)?.store(prev_size, Relaxed);
            if !used {
                self.push(b, size)?;
            }
            prev_size = size;
            b += size;
        }
        self.hdr.used.store(used_bytes, Relaxed);
        self.hdr.live.store(live, Relaxed);
        self.check()
    }

    /// Whether a live object starts at `payload - HDR` (for repairing the root table).
    pub(crate) fn is_live_payload(&self, payload: u64) -> bool {
        payload
            .checked_sub(HDR)
            .filter(|b| *b >= self.start && *b < self.end && (b - self.start) % GRAN == 0)
            .is_some_and(|b| self.is_live_start(b).unwrap_or(false))
    }

    /// Walks the whole heap and reports the first inconsistency: blocks that do not tile
    /// the heap, boundary tags that disagree, a bitmap bit that does not match its block,
    /// neighbouring free blocks, free lists that do not hold exactly the free blocks, or
    /// figures that do not add up.
    pub(crate) fn check(&self) -> Result<()> {
        let (mut b, mut prev_size, mut prev_free) = (self.start, 0u64, false);
        let (mut used_bytes, mut live, mut free_blocks) = (0u64, 0u64, 0u64);
        while b < self.end {
            let (size, used) = self.block(b)?;
            if self.word(b + 8)?.load(Relaxed) != prev_size {
                return Err(corrupt(format!(
                    "block {b:#x}: prev_size disagrees with the block before"
                )));
            }
            if self.is_live_start(b)? != used {
                return Err(corrupt(format!(
                    "block {b:#x}: its header and the bitmap disagree"
                )));
            }
            // No bit may be set inside a block, only at its start.
            let mut inner = b + GRAN;
            while inner < b + size {
                if self.is_live_start(inner)? {
                    return Err(corrupt(format!(
                        "block {b:#x}: a live start inside it at {inner:#x}"
                    )));
                }
                inner += GRAN;
            }
            if used {
                used_bytes += size;
                live += 1;
            } else {
                if prev_free {
                    return Err(corrupt(format!(
                        "block {b:#x}: two free blocks side by side"
                    )));
                }
                free_blocks += 1;
            }
            prev_free = !used;
            prev_size = size;
            b += size;
        }
        if b != self.end {
            return Err(corrupt(format!(
                "the blocks end at {b:#x}, the heap at {:#x}",
                self.end
            )));
        }
        let mut listed = 0u64;
        for i in 0..NBINS {
            self.walk(i, |fb, size| {
                listed += 1;
                (bin(size) != i).then_some(fb)
            })?
            .map_or(Ok(()), |fb| {
                Err(corrupt(format!("free block {fb:#x} is on the wrong list")))
            })?;
        }
        if listed != free_blocks {
            return Err(corrupt(format!(
                "{free_blocks} free blocks in the heap, {listed} on the free lists"
            )));
        }
        if used_bytes != self.hdr.used.load(Relaxed) || live != self.hdr.live.load(Relaxed) {
            return Err(corrupt(format!(
                "{live} live blocks of {used_bytes} bytes, the header says {} of {}",
                self.hdr.live.load(Relaxed),
                self.hdr.used.load(Relaxed)
            )));
        }
        Ok(())
    }

    /// Checks that the handle `(payload, gen)` still names a live allocation:
    /// [`Error::StaleHandle`] otherwise.
    pub(crate) fn check_handle(&self, payload: u64, gen: u64) -> Result<()> {
        let b = payload.checked_sub(HDR).ok_or(Error::StaleHandle)?;
        match self.block(b) {
            Ok((size, true))
                if self.is_live_start(b)?
                    && self.word(b + 24)?.load(Relaxed) == gen
                    && self.sits_between_neighbours(b, size, true)? =>
            {
                Ok(())
            }
            _ => Err(Error::StaleHandle),
        }
    }

    /// Checks that `payload` is the payload of a live block holding `layout`'s type.
    pub(crate) fn check_live(&self, payload: u64, layout: Layout) -> Result<()> {
        let bad = |reason| Error::InvalidPtr {
            offset: payload,
            reason,
        };
        if payload % layout.align.max(1) != 0 {
            return Err(bad("misaligned for its type"));
        }
        let b = payload
            .checked_sub(HDR)
            .ok_or(bad("inside the region header"))?;
        let (size, used) = self
            .block(b)
            .map_err(|_| bad("not the start of an object"))?;
        // The bitmap, which no handle can write, decides; a header can be forged inside an
        // object's data or left behind by a merge.
        if !used || !self.is_live_start(b)? {
            return Err(bad("not a live object (freed, or inside another object)"));
        }
        if self.word(b + 16)?.load(Relaxed) != layout.tag {
            return Err(bad("the object there has another type"));
        }
        if size - HDR < layout.size {
            return Err(bad("the object there is smaller than its type"));
        }
        if !self.sits_between_neighbours(b, size, true)? {
            return Err(bad(
                "its block does not fit between its neighbours (inside another object?)",
            ));
        }
        Ok(())
    }

    /// The payload capacity of the live block at `payload` (already checked live).
    pub(crate) fn capacity(&self, payload: u64) -> Result<u64> {
        Ok(self.block(payload - HDR)?.0 - HDR)
    }

    /// The allocator's figures, with no orphans counted yet, and every live block as
    /// (allocating owner id, block size): who is gone is asked after the allocator lock is
    /// released ([`count_orphans`]), since asking takes a system call per owner.
    pub(crate) fn stats(&self) -> Result<(HeapStats, Vec<(u32, u64)>)> {
        let (mut free, mut largest, mut blocks) = (0u64, 0u64, 0usize);
        for i in 0..NBINS {
            self.walk(i, |_, size| {
                free += size;
                largest = largest.max(size);
                blocks += 1;
                None::<()>
            })?;
        }
        let mut owners = Vec::with_capacity(self.hdr.live.load(Relaxed).min(1 << 20) as usize);
        let mut b = self.start;
        while b < self.end {
            let (size, _) = self.block(b)?;
            if self.is_live_start(b)? {
                let owner = (self.word(b + 24)?.load(Relaxed) >> GEN_OWNER_SHIFT) as u32;
                owners.push((owner, size));
            }
            b += size;
        }
        let stats = HeapStats {
            orphaned_allocations: 0,
            orphaned_bytes: 0,
            used: self.hdr.used.load(Relaxed) as usize,
            free: free as usize,
            largest_free: largest as usize,
            free_blocks: blocks,
            allocations: self.hdr.live.load(Relaxed) as usize,
        };
        Ok((stats, owners))
    }
}

/// Counts into `stats` the live blocks whose allocating process is gone, asking `gone` once
/// per distinct owner (sorted: O(n log n) in the blocks, whatever the number of owners).
pub(crate) fn count_orphans(
    stats: &mut HeapStats,
    mut owners: Vec<(u32, u64)>,
    mut gone: impl FnMut(u32) -> bool,
) {
    owners.sort_unstable_by_key(|&(owner, _)| owner);
    for same in owners.chunk_by(|a, b| a.0 == b.0) {
        let owner = same[0].0;
        if owner != 0 && gone(owner) {
            stats.orphaned_allocations += same.len();
            stats.orphaned_bytes += same.iter().map(|&(_, size)| size as usize).sum::<usize>();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ShmRegion;

    /// `alloc` and `publish`, as `ShmRegion::alloc` does around writing the object.
    fn live_alloc(heap: &Heap<'_>, l: Layout) -> Result<(u64, u64)> {
        let (p, g) = heap.alloc(l)?;
        heap.publish(p)?;
        Ok((p, g))
    }

    fn layout(size: u64) -> Layout {
        Layout {
            size,
            align: 8,
            tag: 7,
        }
    }

    /// A free block followed by a live one, and the offsets of both block headers.
    fn free_then_live(region: &ShmRegion) -> (u64, u64) {
        let heap = region.heap();
        let (x, gx) = live_alloc(&heap, layout(64)).unwrap();
        let (l, _) = live_alloc(&heap, layout(64)).unwrap();
        live_alloc(&heap, layout(64)).unwrap(); // keeps the live one from being the last
        heap.free(x, gx).unwrap();
        (x - HDR, l - HDR)
    }

    /// The word-at-a-time scan agrees with a granule-at-a-time one at every edge: a bit
    /// just inside, just outside, and on both sides of a bitmap word's boundary.
    #[test]
    fn the_inside_scan_sees_exactly_the_live_starts_strictly_inside() {
        let region = ShmRegion::anonymous(1 << 20).unwrap();
        let heap = region.heap();
        let units = ((heap.end - heap.start) / GRAN).min(300);
        let naive = |b: u64, end: u64| {
            ((b + GRAN)..end.min(heap.end))
                .step_by(GRAN as usize)
                .any(|u| heap.is_live_start(u).unwrap())
        };
        let save: Vec<u64> = (0..units.div_ceil(64))
            .map(|w| heap.word(BITMAP + w * 8).unwrap().load(Relaxed))
            .collect();
        for w in 0..save.len() as u64 {
            heap.word(BITMAP + w * 8).unwrap().store(0, Relaxed);
        }
        for bit in [1u64, 62, 63, 64, 65, 127, 128, 200] {
            heap.set_live_start(heap.start + bit * GRAN, true).unwrap();
            for first in [0u64, 1, 60, 63, 64, 100, 130] {
                for len in [1u64, 2, 3, 63, 64, 65, 66, 130, 200] {
                    let (b, end) = (heap.start + first * GRAN, heap.start + (first + len) * GRAN);
                    assert_eq!(
                        heap.live_start_inside(b, end).unwrap(),
                        naive(b, end),
                        "bit {bit}, units {first}..{}",
                        first + len
                    );
                }
            }
            heap.set_live_start(heap.start + bit * GRAN, false).unwrap();
        }
        for (w, v) in save.iter().enumerate() {
            heap.word(BITMAP + w as u64 * 8).unwrap().store(*v, Relaxed);
        }
    }

    #[test]
    fn a_free_block_scribbled_over_a_live_neighbour_is_refused_not_handed_out() {
        let region = ShmRegion::anonymous(1 << 20).unwrap();
        let heap = region.heap();
        let (f, l) = free_then_live(&region);
        assert!(heap.check().is_ok());
        // Three words: the free block's size enlarged over its live neighbour, and the block
        // moved to the free list of its new size.
        let (fsize, _) = heap.block(f).unwrap();
        let (lsize, _) = heap.block(l).unwrap();
        let big = fsize + lsize;
        heap.remove(f, fsize).unwrap();
        heap.word(f).unwrap().store(big, Relaxed);
        heap.push(f, big).unwrap();
        let e = heap.check().unwrap_err();
        assert!(matches!(e, Error::CorruptRegion { .. }), "{e}");
        // An allocation that only this block can serve would have overlapped the live one.
        let mut got = Vec::new();
        let r = loop {
            match live_alloc(&heap, layout(big - HDR)) {
                Ok((p, _)) => got.push(p),
                Err(e) => break e,
            }
            if got.len() > 100 {
                panic!("allocations never failed");
            }
        };
        assert!(
            got.iter().all(|&p| p + big - HDR <= l || p >= l + lsize),
            "an allocation overlaps the live block at {l:#x}: {got:x?}"
        );
        assert!(
            matches!(r, Error::CorruptRegion { .. } | Error::OutOfMemory { .. }),
            "{r}"
        );
    }

    /// A live block A of `a_size` payload bytes followed by `after` (a live block, or free
    /// space), and a header copied from a real block written inside A's payload (as safe code
    /// writing its own data can) at `inside` bytes past A's header, claiming `claim` bytes,
    /// with its bitmap bit set (damage to the file). Returns (A's block, the forged block).
    fn forged_inside(region: &ShmRegion, live_after: bool, claim: u64) -> (u64, u64) {
        let heap = region.heap();
        let (a, _) = live_alloc(&heap, layout(1024)).unwrap();
        if live_after {
            live_alloc(&heap, layout(64)).unwrap();
        }
        let a = a - HDR;
        let forged = a + 256;
        let real = live_alloc(&heap, layout(64)).unwrap().0 - HDR;
        for w in 1..4 {
            let v = heap.word(real + w * 8).unwrap().load(Relaxed);
            heap.word(forged + w * 8).unwrap().store(v, Relaxed);
        }
        heap.word(forged).unwrap().store(claim | USED, Relaxed);
        heap.set_live_start(forged, true).unwrap();
        (a, forged)
    }

    #[test]
    fn a_header_forged_inside_an_object_with_its_bitmap_bit_set_is_not_vouched_for() {
        for (live_after, claim) in [(true, 512), (true, 1024 + HDR - 256), (false, 4096)] {
            let region = ShmRegion::anonymous(1 << 20).unwrap();
            let (a, forged) = forged_inside(&region, live_after, claim);
            let heap = region.heap();
            let lay = Layout {
                size: 64,
                align: 8,
                tag: heap.word(forged + 16).unwrap().load(Relaxed),
            };
            let verdict = heap.check_live(forged + HDR, lay);
            assert!(
                matches!(verdict, Err(Error::InvalidPtr { .. })),
                "a block forged at {forged:#x} inside {a:#x} (claiming {claim}, live after: \
                 {live_after}) was vouched for: {verdict:?}"
            );
            // Which of the two is real cannot be told from the damaged bitmap: the object
            // around it is refused too, and `check` names the damage.
            let (asize, _) = heap.block(a).unwrap();
            assert!(!heap.sits_between_neighbours(a, asize, true).unwrap());
            assert!(matches!(heap.check(), Err(Error::CorruptRegion { .. })));
            // Nor can it be published or freed; and whatever is handed out around it, it
            // stays refused, so nothing handed out is ever vouched for twice.
            let gen = heap.word(forged + 24).unwrap().load(Relaxed);
            assert!(heap.check_handle(forged + HDR, gen).is_err());
            assert!(heap.free(forged + HDR, gen).is_err());
            for _ in 0..8 {
                if live_alloc(&heap, layout(2048)).is_err() {
                    break;
                }
                assert!(heap.check_live(forged + HDR, lay).is_err());
            }
        }
    }

    #[test]
    fn sound_blocks_sit_between_their_neighbours_after_churn() {
        let region = ShmRegion::anonymous(1 << 20).unwrap();
        let heap = region.heap();
        let mut live = Vec::new();
        for i in 0..300u64 {
            live.push(live_alloc(&heap, layout(8 + (i * 53) % 700)).unwrap());
            if i % 4 == 1 {
                let (p, g) = live.swap_remove((i as usize * 5) % live.len());
                heap.free(p, g).unwrap();
            }
        }
        for &(p, g) in &live {
            heap.check_handle(p, g).unwrap();
            heap.check_live(p, layout(8)).unwrap();
        }
    }

    #[test]
    fn stats_asks_once_per_owner_with_the_allocator_free() {
        let region = ShmRegion::anonymous(16 << 20).unwrap();
        let heap = region.heap();
        // 100 000 blocks of 50 000 owners, written into the generations as other processes
        // would have.
        let mut blocks = Vec::new();
        for i in 0..100_000u64 {
            let (p, _) = live_alloc(&heap, layout(8)).unwrap();
            let owner = 1 + i % 50_000;
            heap.word(p - HDR + 24)
                .unwrap()
                .store(1 | owner << GEN_OWNER_SHIFT, Relaxed);
            blocks.push(p);
        }
        let mut asked = std::collections::HashMap::new();
        let stats = region
            .stats_with(|owner| {
                assert!(
                    region.header().alloc_lock.get().try_lock().is_some(),
                    "the allocator lock is held while owners are asked about"
                );
                *asked.entry(owner).or_insert(0) += 1;
                owner % 2 == 0
            })
            .unwrap();
        assert!(asked.values().all(|&n| n == 1), "an owner was asked twice");
        // Owner ids 1..=50 000 and this thread's own, for the region's earlier blocks.
        assert!(
            asked.len() >= 50_000 && asked.len() <= 50_001,
            "{}",
            asked.len()
        );
        assert_eq!(stats.heap.orphaned_allocations, 50_000);
        assert_eq!(stats.heap.orphaned_bytes, 50_000 * 64);
    }

    #[test]
    fn check_passes_on_a_heap_after_churn() {
        let region = ShmRegion::anonymous(1 << 20).unwrap();
        let heap = region.heap();
        let mut live = Vec::new();
        for i in 0..200u64 {
            live.push(live_alloc(&heap, layout(8 + (i * 37) % 900)).unwrap());
            if i % 3 == 0 {
                let (p, g) = live.swap_remove((i as usize * 7) % live.len());
                heap.free(p, g).unwrap();
            }
        }
        heap.check().unwrap();
        for (p, g) in live {
            heap.free(p, g).unwrap();
        }
        heap.check().unwrap();
        assert_eq!(heap.stats().unwrap().0.free_blocks, 1, "whole again");
    }
}
