//! Finding the locks in a region's live objects, through the type registry, without taking
//! any lock. Everything read may change under the scan or be damaged: every offset is
//! checked before it is read, every walk is bounded, and what does not check out is
//! skipped.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering::Relaxed;

use super::{LockInfo, LockReport};
use crate::layout::{decode, Line};
use crate::raw::{Futex, PosixSem, PthreadMutex, RawLock, Spin, SysvSem};
use crate::rw_lock::raw::RawRwLock;
use crate::shm::header;
use crate::shm::view::View;
use crate::{GenLock, Owner, RecLock};

/// The most lock instances looked at in one object (a huge array of locks is sampled from
/// its start).
const MAX_INSTANCES: usize = 1 << 20;
/// The offset of the first lock after a runtime lock set's head (as wide as a set entry).
const SET_HEAD: u64 = crate::SET_ENTRY_BYTES as u64;

/// What a lock in a description is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind<'s> {
    /// A `GenLock` (or a lock set's padded one) of a backend, with `lock-debug` words or not.
    Gen(&'s str, bool),
    Rw,
    Rec,
    /// A runtime-sized lock set's head; the locks follow it.
    SetHead(&'s str, bool),
}

fn kind_of(what: &str) -> Option<Kind<'_>> {
    let backend = |prefix: &str| {
        what.strip_prefix(prefix)
            .and_then(|r| r.strip_prefix('<'))
            .and_then(|r| r.strip_suffix('>'))
    };
    if let Some(b) = backend("lockkit::GenLock/1").or_else(|| backend("lockkit::PaddedLock/1")) {
        return Some(Kind::Gen(b, false));
    }
    if let Some(b) =
        backend("lockkit::GenLock/1+debug").or_else(|| backend("lockkit::PaddedLock/1+debug"))
    {
        return Some(Kind::Gen(b, true));
    }
    if let Some(b) = backend("lockkit::LockSetHead/1") {
        return Some(Kind::SetHead(b, false));
    }
    if let Some(b) = backend("lockkit::LockSetHead/1+debug") {
        return Some(Kind::SetHead(b, true));
    }
    match what {
        "lockkit::RwLock/2" => Some(Kind::Rw),
        "lockkit::RecLock/1" => Some(Kind::Rec),
        _ => None,
    }
}

/// A lock's state: holder, readers, waiters, inconsistent. `None` if it could not be read.
type State = (Option<Owner>, u32, bool, bool);

/// The size of a backend's lock word(s): where a `lock-debug` lock's debug words start
/// (rounded up to 8). `backend` is as the descriptions name it (`RawLock::LAYOUT_NAME`): a
/// backend of another layout version is not read.
fn raw_size(backend: &str) -> Option<u64> {
    use std::mem::size_of;
    Some(match backend {
        <Futex as RawLock>::LAYOUT_NAME => size_of::<Futex>(),
        <Spin as RawLock>::LAYOUT_NAME => size_of::<Spin>(),
        <PthreadMutex as RawLock>::LAYOUT_NAME => size_of::<PthreadMutex>(),
        <PosixSem as RawLock>::LAYOUT_NAME => size_of::<PosixSem>(),
        <SysvSem as RawLock>::LAYOUT_NAME => size_of::<SysvSem>(),
        _ => return None,
    } as u64)
}

/// What a `lock-debug` lock at `at` recorded: its holder's site and how long ago it took
/// it.
fn held_at(
    view: &View<'_>,
    backend: &str,
    at: u64,
) -> (Option<String>, Option<std::time::Duration>) {
    let Some(words) = raw_size(backend).map(|s| at + s.next_multiple_of(8)) else {
        return (None, None);
    };
    let site = view
        .object::<std::sync::atomic::AtomicU32>(words)
        .map(|w| w.load(Relaxed))
        .filter(|&s| s != 0)
        .and_then(|s| view.site(s - 1));
    let now = crate::sys::coarse_ns();
    let held = view
        .word(words + 8)
        .map(|w| w.load(Relaxed))
        .filter(|&t| t != 0 && t <= now)
        .map(|t| std::time::Duration::from_nanos(now - t));
    (site, held)
}

fn gen_state<R: RawLock>(view: &View<'_>, at: u64) -> Option<State> {
    let l: &GenLock<R> = view.object(at)?;
    let raw = l.raw();
    Some((raw.owner(), 0, raw.has_waiters(), raw.is_inconsistent()))
}

fn gen_state_of(view: &View<'_>, backend: &str, at: u64) -> Option<State> {
    match backend {
        <Futex as RawLock>::LAYOUT_NAME => gen_state::<Futex>(view, at),
        <Spin as RawLock>::LAYOUT_NAME => gen_state::<Spin>(view, at),
        <PthreadMutex as RawLock>::LAYOUT_NAME => gen_state::<PthreadMutex>(view, at),
        <PosixSem as RawLock>::LAYOUT_NAME => gen_state::<PosixSem>(view, at),
        <SysvSem as RawLock>::LAYOUT_NAME => gen_state::<SysvSem>(view, at),
        _ => None,
    }
}

/// The stride of a runtime lock set's padded locks, as the program that made it laid them
/// out (with `lock-debug` words or not): a set entry's width or more each.
fn lock_size_of(backend: &str, debug: bool) -> Option<u64> {
    let words = raw_size(backend)?.next_multiple_of(8) + if debug { 16 } else { 0 };
    Some(words.next_multiple_of(crate::SET_ENTRY_BYTES as u64))
}

fn state_at(view: &View<'_>, kind: Kind<'_>, at: u64) -> Option<State> {
    match kind {
        Kind::Gen(b, _) => gen_state_of(view, b, at),
        Kind::Rec => {
            let l: &RecLock = view.object(at)?;
            Some((l.owner(), 0, l.raw_futex().has_waiters(), false))
        }
        Kind::Rw => {
            let l: &RawRwLock = view.object(at)?;
            let (readers, writer, waiters, inconsistent) = l.snapshot();
            let holder = (writer != 0).then(|| l.describe_writer(writer));
            Some((holder, readers.unwrap_or(0), waiters, inconsistent))
        }
        Kind::SetHead(..) => None,
    }
}

/// The kind as the report names it: the backend by its name, without the layout version
/// (`sysv-sem/2` is `sysv-sem`).
fn kind_name(kind: Kind<'_>) -> String {
    let name = |b: &str| b.split('/').next().unwrap_or(b).to_owned();
    match kind {
        Kind::Gen(b, _) => format!("GenLock<{}>", name(b)),
        Kind::Rw => "RwLock".into(),
        Kind::Rec => "RecLock".into(),
        Kind::SetHead(b, _) => format!("LockSet<{}>", name(b)),
    }
}

/// Every lock of an object described by `lines`: (path, offset in the object, kind), with
/// arrays expanded (`stripes[i]` becomes `stripes[0]`, `stripes[1]`, ..).
fn locks_in<'l>(
    lines: &'l [Line],
    limit: usize,
    path_bytes: &mut usize,
) -> Vec<(String, u64, Kind<'l>)> {
    let by_path: HashMap<&str, &Line> = lines.iter().map(|l| (l.path.as_str(), l)).collect();
    let mut out = Vec::new();
    for line in lines {
        let Some(kind) = kind_of(&line.what) else {
            continue;
        };
        // Each `[i]` level: its array's length and its element's size.
        let mut levels = Vec::new();
        let mut search = 0;
        let mut ok = true;
        while let Some(k) = line.path[search..].find("[i]") {
            let end = search + k;
            let array = by_path.get(&line.path[..end]);
            let elem = by_path.get(&line.path[..end + 3]);
            match (array, elem) {
                (Some(a), Some(e)) => {
                    let n = a
                        .what
                        .strip_prefix("array of ")
                        .and_then(|n| n.parse::<u64>().ok());
                    match n {
                        Some(n) => levels.push((end, n, e.size as u64)),
                        None => ok = false,
                    }
                }
                _ => ok = false,
            }
            search = end + 3;
        }
        if !ok {
            continue;
        }
        // `calls.lock` inside a `ShmMutex` (a `lock` beside a `data`) is shown as `calls`:
        // decided once per line, not once per instance.
        let shown = match line.path.strip_suffix("lock") {
            Some(prefix) if by_path.contains_key(format!("{prefix}data").as_str()) => {
                prefix.trim_end_matches('.')
            }
            _ => line.path.as_str(),
        };
        let mut index = vec![0u64; levels.len()];
        'instances: loop {
            // Each instance costs a piece of path per array level: a deeply nested array of
            // locks is counted by its pieces, so its expansion stays bounded too.
            *path_bytes += 16 * levels.len();
            if out.len() >= MAX_INSTANCES.min(limit) || *path_bytes > MAX_PATH_BYTES {
                break;
            }
            let mut offset = line.offset as u64;
            let mut path = String::new();
            let mut from = 0;
            for (&(at, _, stride), &k) in levels.iter().zip(&index) {
                offset = offset.saturating_add(k.saturating_mul(stride));
                path.push_str(&line.path[from..at]);
                path.push_str(&format!("[{k}]"));
                from = at + 3;
            }
            path.push_str(shown.get(from..).unwrap_or(""));
            *path_bytes += path.len();
            out.push((path, offset, kind));
            // The next index, last level fastest.
            for l in (0..levels.len()).rev() {
                index[l] += 1;
                if index[l] < levels[l].1 {
                    continue 'instances;
                }
                index[l] = 0;
            }
            break;
        }
    }
    out
}

/// The most lock instances one scan looks at, over all objects: a description damaged to
/// claim huge arrays of locks costs a bounded time, not minutes.
const SCAN_BUDGET: usize = 1 << 20;
/// The most bytes of lock paths one scan builds (each array level of an instance counted as
/// 16 more): a type whose field names are long, or whose locks are nested in arrays many
/// levels deep, would otherwise need gigabytes, or seconds, for a million paths.
const MAX_PATH_BYTES: usize = 32 << 20;

/// Visits every lock of every described live object: `(object, path, offset, kind)`.
/// Returns (objects, undescribed).
fn walk(view: &View<'_>, mut visit: impl FnMut(&str, &str, u64, Kind<'_>)) -> (usize, usize) {
    let hdr = view.header();
    let roots: HashMap<u64, String> = hdr
        .roots
        .iter()
        .filter(|r| r.name.iter().any(|w| w.load(Relaxed) != 0))
        .map(|r| {
            let name = crate::shm::view::printable(&header::unpack(&r.name));
            (r.offset.load(Relaxed), name)
        })
        .collect();
    let blocks = view.heap().live_blocks();
    // Each distinct tag's description, read from the registry in one pass and decoded once.
    let tags: std::collections::HashSet<u64> = blocks.iter().map(|&(_, tag, _)| tag).collect();
    let descriptions: HashMap<u64, Vec<Line>> = view
        .descriptions(tags)
        .into_iter()
        .map(|(tag, bytes)| (tag, decode(&bytes)))
        .collect();
    // Each type's locks, expanded once (not once per object), within the budget.
    let mut budget = SCAN_BUDGET;
    let mut path_bytes = 0;
    let mut expanded: HashMap<u64, Vec<(String, u64, Kind<'_>)>> = HashMap::new();
    for (&tag, lines) in &descriptions {
        let mut locks = locks_in(lines, budget, &mut path_bytes);
        budget -= locks.len();
        // By offset, so that each object's walk stops at its capacity.
        locks.sort_by_key(|&(_, rel, _)| rel);
        expanded.insert(tag, locks);
    }
    let mut budget = SCAN_BUDGET;
    let (mut objects, mut undescribed) = (0, 0);
    for (payload, tag, capacity) in blocks {
        objects += 1;
        let lines = &descriptions[&tag];
        if lines.is_empty() {
            undescribed += 1;
            continue;
        }
        let object = roots
            .get(&payload)
            .cloned()
            .unwrap_or_else(|| format!("object@{payload:#x}"));
        for (path, rel, kind) in &expanded[&tag] {
            let (path, rel, kind) = (path.as_str(), *rel, *kind);
            if budget == 0 || rel >= capacity {
                break;
            }
            budget -= 1;
            let Kind::SetHead(b, debug) = kind else {
                visit(&object, path, payload + rel, kind);
                continue;
            };
            let (Some(len), Some(size)) = (view.word(payload + rel), lock_size_of(b, debug)) else {
                continue;
            };
            let room = capacity.saturating_sub(rel + SET_HEAD) / size;
            let n = len.load(Relaxed).min(room).min(budget as u64);
            budget -= n as usize;
            for i in 0..n {
                if path_bytes > MAX_PATH_BYTES {
                    break;
                }
                let p = if path.is_empty() {
                    format!("[{i}]")
                } else {
                    format!("{path}[{i}]")
                };
                path_bytes += p.len();
                visit(
                    &object,
                    &p,
                    payload + rel + SET_HEAD + i * size,
                    Kind::Gen(b, debug),
                );
            }
        }
    }
    (objects, undescribed)
}

/// The place (`object.field`) of the lock at `offset`, for messages; `allocator` for the
/// region's own lock.
#[cfg_attr(not(feature = "lock-debug"), allow(dead_code))]
pub(crate) fn place_of(view: &View<'_>, offset: u64) -> Option<String> {
    places_of(view, &[offset].into()).remove(&offset)
}

/// The places of the locks at `offsets`, found in one walk of the region (a report may name
/// thousands of locks: one walk each would re-expand every description each time).
fn places_of(view: &View<'_>, offsets: &HashSet<u64>) -> HashMap<u64, String> {
    let mut found = HashMap::new();
    let alloc = std::ptr::addr_of!(view.header().alloc_lock) as u64
        - view.header() as *const header::Header as u64;
    if offsets.contains(&alloc) {
        found.insert(alloc, "allocator".to_owned());
    }
    walk(view, |object, path, at, _| {
        if offsets.contains(&at) && !found.contains_key(&at) {
            let info = LockInfo {
                object: object.to_owned(),
                field: path.to_owned(),
                ..LockInfo::default()
            };
            found.insert(at, info.place());
        }
    });
    found
}

pub(crate) fn scan(view: &View<'_>) -> LockReport {
    let mut report = LockReport {
        ..LockReport::default()
    };
    let mut locks = Vec::new();
    let (objects, undescribed) = walk(view, |object, path, at, kind| {
        let Some((holder, readers, waiters, inconsistent)) = state_at(view, kind, at) else {
            return;
        };
        if holder.is_none() && readers == 0 && !waiters && !inconsistent {
            return;
        }
        let (site, held_for) = match kind {
            Kind::Gen(b, true) if holder.is_some() => held_at(view, b, at),
            _ => (None, None),
        };
        locks.push(LockInfo {
            kind: kind_name(kind),
            object: object.to_owned(),
            field: path.to_owned(),
            offset: at,
            holder,
            readers,
            waiters,
            inconsistent,
            site,
            held_for,
        });
    });
    report.locks = locks;
    report.objects = objects;
    report.undescribed = undescribed;
    report.inversions = inversions(view);
    report
}

/// The lock-order inversions recorded in the region (by programs built with `lock-debug`),
/// each order with its sites.
fn inversions(view: &View<'_>) -> Vec<super::OrderInversion> {
    let edges = crate::shm::order_table::region_inversions(view);
    if edges.is_empty() {
        return Vec::new();
    }
    let ends: HashSet<u64> = edges.iter().flat_map(|(e, ..)| [e.from, e.to]).collect();
    let places = places_of(view, &ends);
    let place = |off: u64| {
        places
            .get(&off)
            .cloned()
            .unwrap_or_else(|| format!("offset {off:#x}"))
    };
    edges
        .into_iter()
        .map(|(e, held_at, taken_at)| super::OrderInversion {
            held: place(e.from),
            held_at,
            taken: place(e.to),
            taken_at,
            pid: e.pid as u32,
            tid: e.tid as u32,
        })
        .collect()
}
