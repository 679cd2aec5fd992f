//! The shared regions this process has mapped, so that several locks can be ordered by
//! where they are in their region rather than by where this process happened to map it.
//!
//! Invariants: a slot describes a mapping exactly while the mapping exists (the mapping
//! registers itself when made and unregisters when dropped); only `register` and
//! `unregister` write slots, one at a time (under `WRITERS`), each write bracketed by the
//! slot's sequence number going odd then even, so a reader that sees the same even number
//! before and after reading a slot has read one consistent description. Readers take no
//! lock (a `locked!` over several locks reads this on every use). A forked child inherits
//! the table along with the mappings, at the same addresses; if another thread of the parent
//! was writing the table at that instant, the child (which has no such thread) releases the
//! writers' flag and empties the half-written slot in its fork handler (`after_fork_in_child`),
//! so its own mappings never wait for a thread that does not exist. At most `SLOTS` regions are
//! described at once; the locks of any beyond that are ordered by address, as process-local
//! locks are.
//!
//! The lowest layer beside `sys`: it knows nothing of what the mappings hold; `liveness`
//! records a region's mapping here together with its owner-id entry.

use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::*};

const SLOTS: usize = 64;

struct Slot {
    /// Odd while a writer changes the slot.
    seq: AtomicU32,
    base: AtomicUsize,
    /// 0: the slot is free.
    len: AtomicUsize,
    dev: AtomicU64,
    ino: AtomicU64,
    /// Threads reading the mapping through [`pinned`]: `unregister` waits for none.
    pins: AtomicU32,
    /// The file's entry in `crate::liveness` (which hands out owner ids).
    file: AtomicUsize,
    /// Where the region's owner-id area is in this mapping (`crate::liveness::Area`).
    area: AtomicUsize,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE: Slot = Slot {
    seq: AtomicU32::new(0),
    base: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    dev: AtomicU64::new(0),
    ino: AtomicU64::new(0),
    pins: AtomicU32::new(0),
    file: AtomicUsize::new(0),
    area: AtomicUsize::new(0),
};

static TABLE: [Slot; SLOTS] = [FREE; SLOTS];
/// One past the highest slot ever used: readers scan only that far.
static USED: AtomicUsize = AtomicUsize::new(0);
/// Set while a thread writes the table. A flag rather than a `Mutex`, so that a fork
/// child can release it (see `after_fork_in_child`).
static WRITERS: AtomicBool = AtomicBool::new(false);

/// Holds `WRITERS` for its lifetime.
struct Writing;

impl Writing {
    fn start() -> Writing {
        while WRITERS
            .compare_exchange_weak(false, true, Acquire, Relaxed)
            .is_err()
        {
            // Writers map or unmap a region: rare, and never held across a wait.
            std::thread::yield_now();
        }
        Writing
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        WRITERS.store(false, Release);
    }
}

/// In a fork child (from the atfork handler, async-signal-safe: atomics only): the
/// thread that may have been writing the table does not exist here.
pub(crate) fn after_fork_in_child() {
    // The threads that had mappings pinned do not exist here either.
    for slot in &TABLE {
        slot.pins.store(0, Relaxed);
    }
    if WRITERS.load(Relaxed) {
        for slot in &TABLE {
            if slot.seq.load(Relaxed) % 2 == 1 {
                // Half-written: forget it (its locks are ordered by address instead).
                slot.len.store(0, Relaxed);
                slot.seq.fetch_add(1, Release);
            }
        }
        WRITERS.store(false, Release);
    }
}

fn write(slot: &Slot, f: impl FnOnce(&Slot)) {
    slot.seq.fetch_add(1, Relaxed);
    fence(Release);
    f(slot);
    slot.seq.fetch_add(1, Release);
}

/// A mapping to record: where it is, which object it maps, and what `crate::liveness`
/// keeps for it (its file's owner-id entry, and where the region's owner-id area is).
pub(crate) struct NewMapping {
    pub(crate) base: *const u8,
    pub(crate) len: usize,
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) file: usize,
    pub(crate) area: usize,
}

/// This process has [`SLOTS`] mappings recorded already.
#[derive(Debug)]
pub(crate) struct Full;

impl std::fmt::Display for Full {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "this process has {SLOTS} regions mapped already; drop one first"
        )
    }
}

/// Records a mapping. Fails when this process has [`SLOTS`] mappings already: a lock in an
/// unrecorded mapping could not be judged, nor ordered, so the caller does not map it.
pub(crate) fn register(m: NewMapping) -> Result<(), Full> {
    let _w = Writing::start();
    let (i, slot) = TABLE
        .iter()
        .enumerate()
        .find(|(_, s)| s.len.load(Relaxed) == 0)
        .ok_or(Full)?;
    write(slot, |s| {
        s.base.store(m.base as usize, Relaxed);
        s.dev.store(m.dev, Relaxed);
        s.ino.store(m.ino, Relaxed);
        s.file.store(m.file, Relaxed);
        s.area.store(m.area, Relaxed);
        s.len.store(m.len.max(1), Relaxed);
    });
    USED.fetch_max(i + 1, Release);
    Ok(())
}

/// Forgets the mapping at `base`; returns once no thread reads it through [`pinned`], so
/// the caller may unmap it, with the owner-id entry it was recorded with (`None` if no
/// mapping was recorded there).
pub(crate) fn unregister(base: *const u8) -> Option<usize> {
    let _w = Writing::start();
    let used = USED.load(Relaxed);
    let slot = TABLE[..used]
        .iter()
        .find(|s| s.len.load(Relaxed) != 0 && s.base.load(Relaxed) == base as usize)?;
    write(slot, |s| s.len.store(0, Relaxed));
    // Against `pinned`: this thread clears the slot then reads the pins, a reader pins then
    // reads the slot; with a full fence on both sides, one sees the other.
    fence(SeqCst);
    while slot.pins.load(Relaxed) != 0 {
        // A pinned section is short (a region's description read for a message).
        std::thread::yield_now();
    }
    fence(Acquire);
    Some(slot.file.load(Relaxed))
}

/// A registered mapping: where it is, its file's owner-id entry and its id area.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Located {
    pub(crate) base: usize,
    pub(crate) len: usize,
    pub(crate) file: usize,
    pub(crate) area: usize,
}

/// The registered mapping that holds `addr`.
pub(crate) fn locate(addr: usize) -> Option<Located> {
    let used = USED.load(Acquire);
    TABLE[..used].iter().find_map(|slot| loop {
        let seq = slot.seq.load(Acquire);
        let (base, len) = (slot.base.load(Relaxed), slot.len.load(Relaxed));
        let (file, area) = (slot.file.load(Relaxed), slot.area.load(Relaxed));
        fence(Acquire);
        if seq % 2 == 1 || slot.seq.load(Relaxed) != seq {
            std::hint::spin_loop();
            continue;
        }
        break (len != 0 && addr.wrapping_sub(base) < len).then_some(Located {
            base,
            len,
            file,
            area,
        });
    })
}

/// A slot's mapping, read consistently; `None` when free.
fn read(slot: &Slot) -> Option<(usize, usize, u64, u64)> {
    loop {
        let seq = slot.seq.load(Acquire);
        let (base, len) = (slot.base.load(Relaxed), slot.len.load(Relaxed));
        let ids = (slot.dev.load(Relaxed), slot.ino.load(Relaxed));
        fence(Acquire);
        if seq % 2 == 1 || slot.seq.load(Relaxed) != seq {
            std::hint::spin_loop();
            continue;
        }
        return (len != 0).then_some((base, len, ids.0, ids.1));
    }
}

/// Runs `f` with the registered mapping that holds `addr` (its base, length and object
/// identity), which stays mapped until `f` returns: `unregister` waits for it. `None` if
/// no registered mapping holds `addr`. For reading a region that no handle of the
/// caller's keeps mapped (a lock whose guard was leaked); `f` must not drop a region.
#[cfg_attr(not(feature = "lock-debug"), allow(dead_code))]
pub(crate) fn pinned<T>(addr: usize, f: impl FnOnce(usize, usize, u64, u64) -> T) -> Option<T> {
    let used = USED.load(Acquire);
    let slot = TABLE[..used]
        .iter()
        .find(|s| read(s).is_some_and(|(base, len, ..)| addr.wrapping_sub(base) < len))?;
    slot.pins.fetch_add(1, Relaxed);
    fence(SeqCst);
    /// Unpins on every path, a panic in `f` included.
    struct Unpin<'a>(&'a AtomicU32);
    impl Drop for Unpin<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Release);
        }
    }
    let _unpin = Unpin(&slot.pins);
    // Pinned: still the mapping holding `addr` (not unregistered meanwhile, nor reused)?
    let (base, len, dev, ino) =
        read(slot).filter(|&(base, len, ..)| addr.wrapping_sub(base) < len)?;
    Some(f(base, len, dev, ino))
}

/// The registered mapping that holds `addr`: its base, length and object identity.
#[cfg_attr(not(feature = "lock-debug"), allow(dead_code))]
pub(crate) fn region_of(addr: usize) -> Option<(usize, usize, u64, u64)> {
    let used = USED.load(Acquire);
    TABLE[..used]
        .iter()
        .filter_map(read)
        .find(|&(base, len, ..)| addr.wrapping_sub(base) < len)
}

/// Where `addr` is, as every process sees it.
#[inline]
fn key(addr: usize) -> [u64; 3] {
    let used = USED.load(Acquire);
    for slot in &TABLE[..used] {
        loop {
            let seq = slot.seq.load(Acquire);
            let (base, len) = (slot.base.load(Relaxed), slot.len.load(Relaxed));
            // Most slots do not hold the address: decide that first, then check that the
            // slot was not being rewritten while it was read.
            let inside = addr.wrapping_sub(base) < len;
            let ids = if inside {
                (slot.dev.load(Relaxed), slot.ino.load(Relaxed))
            } else {
                (0, 0)
            };
            fence(Acquire);
            if seq % 2 == 1 || slot.seq.load(Relaxed) != seq {
                std::hint::spin_loop();
                continue;
            }
            if inside {
                return [ids.0, ids.1, (addr - base) as u64];
            }
            break;
        }
    }
    [u64::MAX, u64::MAX, addr as u64]
}

/// Whether key `a` comes strictly before key `b`. (Compared word by word: comparing the
/// arrays whole makes vector loads of words just stored one at a time, which stall.)
#[inline]
pub(crate) fn before(a: &[u64; 3], b: &[u64; 3]) -> bool {
    if a[0] != b[0] {
        a[0] < b[0]
    } else if a[1] != b[1] {
        a[1] < b[1]
    } else {
        a[2] < b[2]
    }
}

/// Where each address is, as every process sees it: `[dev, ino, offset]` inside a mapped
/// region, `[MAX, MAX, address]` elsewhere (after every region: no device is numbered
/// `u64::MAX`).
#[inline]
pub(crate) fn order_keys<const N: usize>(addrs: [usize; N]) -> [[u64; 3]; N] {
    addrs.map(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_in_a_registered_region_is_keyed_by_the_region_and_its_offset() {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata("/dev/null").unwrap();
        // Addresses no mapping can have (below mmap_min_addr), so no real region overlaps.
        let base = 0x1000 as *const u8;
        register(NewMapping {
            base,
            len: 0x100,
            dev: meta.dev(),
            ino: meta.ino(),
            file: 0,
            area: 0,
        })
        .unwrap();
        let [inside, outside] = order_keys([0x1010, 0x1100]);
        assert_eq!(inside, [meta.dev(), meta.ino(), 0x10]);
        assert_eq!(outside, [u64::MAX, u64::MAX, 0x1100]);
        unregister(base);
        assert_eq!(order_keys([0x1010]), [[u64::MAX, u64::MAX, 0x1010]]);
    }

    #[test]
    fn region_locks_come_before_process_local_ones_and_equal_keys_are_not_before() {
        let region = [1, 2, 64];
        let local = [u64::MAX, u64::MAX, 8];
        assert!(before(&region, &local));
        assert!(!before(&local, &region));
        assert!(!before(&region, &region));
        assert!(before(&[1, 2, 8], &[1, 2, 64]));
        assert!(before(&[1, 1, 999], &[1, 2, 0]));
    }
}
