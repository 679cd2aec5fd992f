//! A table of lock-order edges ("`to` was taken while `from` was held") in words that
//! several threads, or several processes, write at once without a lock: the lock-order
//! checker records edges from inside `lock()`, where no lock may be taken, and another
//! process's report reads them.
//!
//! Open addressing over entries of eight words: `[key, from, to, held_site, taken_site,
//! pid, flags, tid]`. A writer claims an empty entry by a compare-exchange of its key from
//! 0 to `BUSY`, writes the rest, and publishes the key with `Release`; readers skip `BUSY`
//! entries (an edge being written is missed for that instant, never misread). Entries are
//! a forgotten edge becomes a tombstone, which lookups step over and inserts reuse. Two
//! threads recording one new edge at once may both claim an entry for it; either is
//! correct. A full table records nothing more.

// Only a program built with `lock-debug` writes edges; any program reads them for its report.
#![cfg_attr(not(feature = "lock-debug"), allow(dead_code))]

use std::sync::atomic::{AtomicU64, Ordering::*};

use super::view::View;

/// Words per entry.
pub(crate) const ENTRY_WORDS: u64 = 8;
const EMPTY: u64 = 0;
const BUSY: u64 = u64::MAX;
const TOMB: u64 = u64::MAX - 1;
/// How far a lookup probes from an edge's home entry.
const PROBES: u64 = 64;
/// The edge was found inverted (some thread took the two locks the other way round).
pub(crate) const INVERTED: u64 = 1;

/// One recorded edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Edge {
    /// The lock that was held.
    pub(crate) from: u64,
    /// The lock taken while `from` was held.
    pub(crate) to: u64,
    /// Where `from` had been taken (a site code: see the checker).
    pub(crate) held_site: u64,
    /// Where `to` was taken.
    pub(crate) taken_site: u64,
    /// Who recorded it.
    pub(crate) pid: u64,
    pub(crate) tid: u64,
    pub(crate) flags: u64,
}

/// Where a table's words are: a region's lock-order area, or the process's own table.
pub(crate) trait Words {
    /// Word `i` of the table, if it has one.
    fn word(&self, i: u64) -> Option<&AtomicU64>;
    /// How many words the table has.
    fn words(&self) -> u64;
}

/// An edge table over some words.
pub(crate) struct EdgeTable<W>(pub(crate) W);

fn key(from: u64, to: u64) -> u64 {
    let mut h = from.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ to.rotate_left(29);
    h ^= h >> 31;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 29;
    h.clamp(1, TOMB - 1)
}

impl<W: Words> EdgeTable<W> {
    fn entries(&self) -> u64 {
        self.0.words() / ENTRY_WORDS
    }

    fn w(&self, entry: u64, word: u64) -> Option<&AtomicU64> {
        self.0
            .word(entry.checked_mul(ENTRY_WORDS)?.checked_add(word)?)
    }

    fn read(&self, entry: u64) -> Option<Edge> {
        let r = |i| self.w(entry, i).map(|w| w.load(Relaxed));
        Some(Edge {
            from: r(1)?,
            to: r(2)?,
            held_site: r(3)?,
            taken_site: r(4)?,
            pid: r(5)?,
            flags: r(6)?,
            tid: r(7)?,
        })
    }

    /// The entries an edge may be in, from its home entry.
    fn probe(&self, k: u64) -> impl Iterator<Item = u64> + '_ {
        let n = self.entries();
        (0..PROBES.min(n)).map(move |i| (k % n.max(1) + i) % n.max(1))
    }

    /// The entry holding the edge `from -> to`, and the edge.
    pub(crate) fn find(&self, from: u64, to: u64) -> Option<(u64, Edge)> {
        let k = key(from, to);
        for e in self.probe(k) {
            match self.w(e, 0)?.load(Acquire) {
                EMPTY => return None,
                x if x == k => {
                    let edge = self.read(e)?;
                    if (edge.from, edge.to) == (from, to) {
                        return Some((e, edge));
                    }
                }
                _ => {}
            }
        }
        None
    }

    /// Records `edge` unless the table has it already. Returns its entry, or `None` if the
    /// table is full (near the edge's home entry).
    pub(crate) fn insert(&self, edge: Edge) -> Option<u64> {
        let k = key(edge.from, edge.to);
        for e in self.probe(k) {
            let head = self.w(e, 0)?;
            match head.load(Acquire) {
                free @ (EMPTY | TOMB) => {
                    // A tombstone is reused: lookups step over it either way, so the chains
                    // through it stay whole, and freed objects do not wear the table out.
                    if head.compare_exchange(free, BUSY, Acquire, Relaxed).is_err() {
                        continue;
                    }
                    let fields = [
                        edge.from,
                        edge.to,
                        edge.held_site,
                        edge.taken_site,
                        edge.pid,
                        edge.flags,
                        edge.tid,
                    ];
                    for (i, v) in fields.into_iter().enumerate() {
                        self.w(e, 1 + i as u64)?.store(v, Relaxed);
                    }
                    head.store(k, Release);
                    return Some(e);
                }
                x if x == k
                    && self
                        .read(e)
                        .is_some_and(|d| (d.from, d.to) == (edge.from, edge.to)) =>
                {
                    return Some(e);
                }
                _ => {}
            }
        }
        None
    }

    /// Sets `flags` on an entry `find` or `insert` returned; returns the flags it had.
    pub(crate) fn flag(&self, entry: u64, flags: u64) -> u64 {
        self.w(entry, 6).map_or(0, |w| w.fetch_or(flags, Relaxed))
    }

    /// Every published edge.
    pub(crate) fn edges(&self) -> Vec<Edge> {
        (0..self.entries())
            .filter(|&e| {
                self.w(e, 0)
                    .is_some_and(|w| !matches!(w.load(Acquire), EMPTY | BUSY | TOMB))
            })
            .filter_map(|e| self.read(e))
            .collect()
    }

    /// Turns every edge that `gone` says names a lock that no longer exists into a
    /// tombstone.
    pub(crate) fn forget(&self, gone: impl Fn(u64) -> bool) {
        for e in 0..self.entries() {
            let Some(head) = self.w(e, 0) else { return };
            let k = head.load(Acquire);
            if matches!(k, EMPTY | BUSY | TOMB) {
                continue;
            }
            if self.read(e).is_some_and(|d| gone(d.from) || gone(d.to)) {
                let _ = head.compare_exchange(k, TOMB, Relaxed, Relaxed);
            }
        }
    }
}

/// A region's lock-order area.
pub(crate) struct RegionWords<'v, 'a> {
    view: &'v View<'a>,
    start: u64,
    end: u64,
}

impl<'v, 'a> RegionWords<'v, 'a> {
    pub(crate) fn of(view: &'v View<'a>) -> Self {
        let (start, end) = view.id.order_area();
        RegionWords { view, start, end }
    }
}

impl Words for RegionWords<'_, '_> {
    fn word(&self, i: u64) -> Option<&AtomicU64> {
        let at = self.start.checked_add(i.checked_mul(8)?)?;
        if at.checked_add(8)? > self.end {
            return None;
        }
        self.view.word(at)
    }
    fn words(&self) -> u64 {
        (self.end - self.start) / 8
    }
}

/// The inversions recorded in a region, for its report: both orders of each pair, with the
/// sites' texts.
pub(crate) fn region_inversions(view: &View<'_>) -> Vec<(Edge, Option<String>, Option<String>)> {
    let site = |code: u64| view.site(u32::try_from(code.checked_sub(1)?).ok()?);
    EdgeTable(RegionWords::of(view))
        .edges()
        .into_iter()
        .filter(|e| e.flags & INVERTED != 0)
        .map(|e| (e, site(e.held_site), site(e.taken_site)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Local(Vec<AtomicU64>);
    impl Words for Local {
        fn word(&self, i: u64) -> Option<&AtomicU64> {
            self.0.get(i as usize)
        }
        fn words(&self) -> u64 {
            self.0.len() as u64
        }
    }

    fn table(entries: usize) -> EdgeTable<Local> {
        EdgeTable(Local(
            (0..entries * ENTRY_WORDS as usize)
                .map(|_| AtomicU64::new(0))
                .collect(),
        ))
    }

    fn edge(from: u64, to: u64) -> Edge {
        Edge {
            from,
            to,
            held_site: from + 100,
            taken_site: to + 100,
            pid: 7,
            tid: 8,
            flags: 0,
        }
    }

    #[test]
    fn edges_are_found_by_both_ends_and_recorded_once() {
        let t = table(64);
        assert_eq!(t.find(1, 2), None);
        let e = t.insert(edge(1, 2)).unwrap();
        assert_eq!(t.insert(edge(1, 2)), Some(e));
        assert_eq!(t.find(1, 2), Some((e, edge(1, 2))));
        assert_eq!(t.find(2, 1), None);
        t.insert(edge(2, 1)).unwrap();
        assert_eq!(t.edges().len(), 2);
        assert_eq!(t.flag(e, INVERTED), 0);
        assert_eq!(t.find(1, 2).unwrap().1.flags, INVERTED);
    }

    #[test]
    fn a_full_table_records_nothing_more_and_forgotten_edges_are_stepped_over() {
        let t = table(8);
        for i in 0..8 {
            assert!(t.insert(edge(i, i + 1)).is_some());
        }
        assert_eq!(t.insert(edge(100, 101)), None);
        t.forget(|l| l == 3);
        assert_eq!(t.find(2, 3), None);
        assert_eq!(t.find(3, 4), None);
        for i in (0..8).filter(|&i| i != 2 && i != 3) {
            assert!(t.find(i, i + 1).is_some(), "{i}");
        }
        assert_eq!(t.edges().len(), 6);
        // The forgotten entries are used again: freed objects do not wear the table out.
        assert!(t.insert(edge(100, 101)).is_some());
        assert!(t.insert(edge(102, 103)).is_some());
        assert_eq!(t.insert(edge(104, 105)), None);
        for i in (0..8).filter(|&i| i != 2 && i != 3) {
            assert!(t.find(i, i + 1).is_some(), "{i}");
        }
    }
}
