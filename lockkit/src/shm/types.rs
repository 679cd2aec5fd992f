//! The region's type registry: the layout description (`layout::encode`) of every type that
//! was ever allocated in the region, once per fingerprint, in an append-only area after the
//! heap (outside every block: no handle reaches it, and the allocator's figures and free
//! space are untouched by it). A lookup of another layout reads the published type's
//! description from it to say which field differs; the lock report reads it to find the
//! locks inside every live object.
//!
//! An entry is `[fingerprint, len, digest (4 words), text..]` in 8-byte words, read and
//! written as atomics. The fingerprint is the digest's first word; the digest and the text
//! are compared whole before an object is handed out as a type, so two layouts are never
//! confused, whatever their fingerprints.
//! Writers hold the allocator lock, write an entry whole and then publish it by advancing
//! `Header::types_used` with `Release`; readers (the inspector among them, which takes no
//! lock) read `types_used` with `Acquire`, bound every walk by the area, and accept any
//! bytes: another process may have damaged it. A process killed while registering leaves
//! bytes past `types_used`, overwritten by the next entry. A type that cannot be described
//! (a full registry, a type too large or deep) cannot be allocated: an undescribed type could
//! not be told from another.

use std::mem::size_of;
use std::sync::atomic::{AtomicU64, Ordering::*};

use super::view::View;
use crate::layout::{self, TypeLayout};

const WORD: u64 = size_of::<AtomicU64>() as u64;
/// Words before an entry's text: fingerprint, length, digest.
const HEAD_WORDS: u64 = 6;

/// The registry bytes `layout`'s entry takes: its head and its description, in words (a
/// type that cannot be described counts as the largest description: it is refused anyway).
pub(super) fn entry_bytes(layout: &TypeLayout) -> u64 {
    let text = layout::encode(layout).map_or(layout::MAX_DESCRIPTION, |t| t.len());
    (HEAD_WORDS + (text as u64).div_ceil(WORD)) * WORD
}

/// Why a type was not (newly) described.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Registered {
    /// No room left for it: `needed` bytes, `free` left.
    Full { needed: u64, free: u64 },
    /// Another layout is described under the same fingerprint.
    Collision,
    /// Its description cannot be had whole.
    Undescribable(layout::Undescribable),
}

/// What the registry says of a layout under a fingerprint.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Described {
    /// Described, as this layout.
    Same,
    /// Another layout is described under the fingerprint.
    Other,
    /// Nothing is described under it (or the layout cannot be described at all).
    Missing,
}

impl<'a> View<'a> {
    /// The registry word `i` (counted from the area's start), if the area has it.
    fn type_word(&self, i: u64) -> Option<&'a AtomicU64> {
        let (start, end) = self.id.types_area();
        let at = start.checked_add(i.checked_mul(WORD)?)?;
        if at.checked_add(WORD)? > end {
            return None;
        }
        self.word(at)
    }

    /// Each published entry as (first word index, fingerprint, text length), in order.
    fn type_entries(&self) -> Vec<(u64, u64, u64)> {
        let (start, end) = self.id.types_area();
        let used_words = self.header().types_used.load(Acquire).min(end - start) / WORD;
        let mut out = Vec::new();
        let mut i = 0;
        while i + HEAD_WORDS <= used_words {
            let (Some(fp), Some(len)) = (self.type_word(i), self.type_word(i + 1)) else {
                break;
            };
            let len = len.load(Relaxed);
            let words = len.div_ceil(WORD);
            if words > used_words - i - HEAD_WORDS {
                break; // damaged: runs past what is published
            }
            out.push((i, fp.load(Relaxed), len));
            i += HEAD_WORDS + words;
        }
        out
    }

    /// Makes sure `layout` (with fingerprint `tag`) is described; the caller holds the
    /// allocator lock. Cheap when it is: a walk over the entries' heads.
    pub(super) fn register_type(&self, tag: u64, layout: &TypeLayout) -> Result<(), Registered> {
        let entries = self.type_entries();
        if entries.iter().any(|&(_, fp, _)| fp == tag) {
            return match self.described_as(tag, layout) {
                Described::Same => Ok(()),
                _ => Err(Registered::Collision),
            };
        }
        let next = entries
            .last()
            .map_or(0, |&(i, _, len)| i + HEAD_WORDS + len.div_ceil(WORD));
        let text = layout::encode(layout).map_err(Registered::Undescribable)?;
        let words = (text.len() as u64).div_ceil(WORD);
        // The last word must exist before anything is written.
        if self
            .type_word(next + HEAD_WORDS + words.max(1) - 1)
            .is_none()
        {
            let (start, end) = self.id.types_area();
            return Err(Registered::Full {
                needed: (HEAD_WORDS + words) * WORD,
                free: (end - start).saturating_sub(next * WORD),
            });
        }
        let word = |i| self.type_word(i).expect("checked: inside the area");
        word(next).store(tag, Relaxed);
        word(next + 1).store(text.len() as u64, Relaxed);
        for (k, w) in layout.digest().chunks(WORD as usize).enumerate() {
            let w: [u8; WORD as usize] = w.try_into().expect("32 bytes in 4 words");
            word(next + 2 + k as u64).store(u64::from_le_bytes(w), Relaxed);
        }
        for (k, chunk) in text.chunks(WORD as usize).enumerate() {
            let mut w = [0u8; WORD as usize];
            w[..chunk.len()].copy_from_slice(chunk);
            word(next + HEAD_WORDS + k as u64).store(u64::from_le_bytes(w), Relaxed);
        }
        self.header()
            .types_used
            .store((next + HEAD_WORDS + words) * WORD, Release);
        Ok(())
    }

    /// Whether the registry describes `layout` under `tag`: the same digest and the same
    /// description, both compared whole. A 64-bit fingerprint can be made to collide with
    /// enough work; the digest cannot, and the description is the layout itself.
    pub(crate) fn described_as(&self, tag: u64, layout: &TypeLayout) -> Described {
        let Some(&(i, _, len)) = self.type_entries().iter().find(|&&(_, fp, _)| fp == tag) else {
            return Described::Missing;
        };
        let Ok(text) = layout::encode(layout) else {
            return Described::Missing;
        };
        let digest = layout.digest();
        let same_digest = (0..4).all(|k| {
            let w: [u8; WORD as usize] = digest[k * 8..k * 8 + 8].try_into().expect("8 bytes");
            self.type_word(i + 2 + k as u64)
                .is_some_and(|x| x.load(Relaxed) == u64::from_le_bytes(w))
        });
        if same_digest && self.entry_bytes(i, len) == text {
            Described::Same
        } else {
            Described::Other
        }
    }

    /// The description registered for fingerprint `tag`, or nothing.
    pub(crate) fn description(&self, tag: u64) -> Vec<u8> {
        match self.type_entries().iter().find(|&&(_, fp, _)| fp == tag) {
            Some(&(i, _, len)) => self.entry_bytes(i, len),
            None => Vec::new(),
        }
    }

    /// The descriptions registered for `tags`, reading the registry once (the report asks
    /// for every tag its live blocks carry, which a damaged region may make many): an
    /// unknown tag gets an empty description. The bytes read are bounded by the registry's
    /// size, whatever the number of tags.
    pub(crate) fn descriptions(
        &self,
        tags: impl IntoIterator<Item = u64>,
    ) -> std::collections::HashMap<u64, Vec<u8>> {
        let entries: std::collections::HashMap<u64, (u64, u64)> = self
            .type_entries()
            .into_iter()
            .map(|(i, fp, len)| (fp, (i, len)))
            .collect();
        tags.into_iter()
            .map(|tag| {
                let bytes = entries
                    .get(&tag)
                    .map_or_else(Vec::new, |&(i, len)| self.entry_bytes(i, len));
                (tag, bytes)
            })
            .collect()
    }

    /// The bytes of the entry at word `i`, `len` long (at most a description's maximum).
    fn entry_bytes(&self, i: u64, len: u64) -> Vec<u8> {
        let len = len.min(layout::MAX_DESCRIPTION as u64);
        let mut out = Vec::with_capacity(len as usize);
        for k in 0..len.div_ceil(WORD) {
            match self.type_word(i + HEAD_WORDS + k) {
                Some(w) => out.extend_from_slice(&w.load(Relaxed).to_le_bytes()),
                None => break,
            }
        }
        out.truncate(len as usize);
        out
    }
}
