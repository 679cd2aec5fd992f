//! The region's table of lock sites: the `file:line:column` of each place that took a lock in
//! the region (recorded with the `lock-debug` feature), once per site, so that a lock can
//! name where it was taken with a 4-byte index that another process can read back.
//!
//! An entry is 128 bytes: `[hash, len, text (112 bytes)]`, as atomic words. A writer claims an
//! entry by advancing `Header::sites_used` (no lock: recording happens inside `lock()`, and
//! could be inside the allocator's own lock), writes length and text, and stores the hash
//! last with `Release`; an entry whose hash is 0 is not ready. Readers accept any bytes. Two
//! processes that record one new site at once may both claim an entry for it; both are
//! correct. A full table records nothing more (the report then shows no site).

use std::sync::atomic::Ordering::*;

use super::view::View;

const ENTRY: u64 = 128;
const TEXT: usize = 112;

#[cfg_attr(not(feature = "lock-debug"), allow(dead_code))]
fn hash(text: &[u8]) -> u64 {
    // FNV-1a; never 0 (0 marks an entry not ready).
    let h = text.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    h.max(1)
}

impl View<'_> {
    #[cfg_attr(not(feature = "lock-debug"), allow(dead_code))]
    fn sites_capacity(&self) -> u64 {
        let (start, end) = self.id.sites_area();
        (end - start) / ENTRY
    }

    fn site_word(&self, entry: u64, word: u64) -> Option<&std::sync::atomic::AtomicU64> {
        let (start, end) = self.id.sites_area();
        let at = start + entry.checked_mul(ENTRY)? + word * 8;
        if at + 8 > end {
            return None;
        }
        self.word(at)
    }

    /// The text of entry `index`, if it is ready.
    pub(crate) fn site(&self, index: u32) -> Option<String> {
        let index = u64::from(index);
        if self.site_word(index, 0)?.load(Acquire) == 0 {
            return None;
        }
        let len = (self.site_word(index, 1)?.load(Relaxed) as usize).min(TEXT);
        let mut bytes = Vec::with_capacity(TEXT);
        for w in 0..(TEXT as u64 / 8) {
            bytes.extend_from_slice(&self.site_word(index, 2 + w)?.load(Relaxed).to_le_bytes());
        }
        bytes.truncate(len);
        Some(super::view::printable(&String::from_utf8_lossy(&bytes)))
    }

    /// The index of `text`'s entry, recording it if the table does not have it yet; `None`
    /// if the table is full. Texts longer than an entry are cut (from the front: the file
    /// name and line matter more than the directories).
    #[cfg_attr(not(feature = "lock-debug"), allow(dead_code))]
    pub(crate) fn intern_site(&self, text: &str) -> Option<u32> {
        let mut bytes = text.as_bytes();
        if bytes.len() > TEXT {
            bytes = &bytes[bytes.len() - TEXT..];
        }
        let h = hash(bytes);
        let cap = self.sites_capacity();
        let used = self.header().sites_used.load(Acquire).min(cap);
        for i in 0..used {
            if self.site_word(i, 0)?.load(Acquire) == h
                && self.site(i as u32).as_deref().map(str::as_bytes) == Some(bytes)
            {
                return Some(i as u32);
            }
        }
        let i = self.header().sites_used.fetch_add(1, Relaxed);
        if i >= cap {
            return None;
        }
        self.site_word(i, 1)?.store(bytes.len() as u64, Relaxed);
        for (w, chunk) in bytes.chunks(8).enumerate() {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.site_word(i, 2 + w as u64)?
                .store(u64::from_le_bytes(b), Relaxed);
        }
        self.site_word(i, 0)?.store(h, Release);
        Some(i as u32)
    }
}
