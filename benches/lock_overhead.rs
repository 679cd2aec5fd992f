//! What a lock costs when nobody else wants it, measured against real peers in the same run.
//!
//! `cargo bench --bench lock_overhead`; the figures live in BENCHMARKS.md.
//!
//! - `uncontended`: one lock+unlock pair on a word in shared memory: GenLock against the
//!   floor a sleeping lock must pay (compare-exchange then swap), glibc's process-shared
//!   `pthread_mutex_t` (plain and robust, which GenLock replaces), and `std::sync::Mutex`.
//! - `guard_forms`: lock, increment, unlock through a hand-written `ShmMutex` guard, through
//!   `locked!`, and through a `#[shared_locked]` accessor: these must cost the same.
//! - `group`: a group lock with no chained locks against a bare GenLock (guards observed);
//!   `benches/grp_lock.rs` compares chained groups with the same locks taken by hand.
//! - `striped`: one element of a striped field, uncontended: a read through a field striped
//!   by a `GenRwLockSet` (`read_<field>(i)`), a write through it, and a lock through a field
//!   striped by a `GenLockSet` (`lock_<field>(i)`): what a lookup pays for the reader-writer
//!   lock when nobody writes.
//! - `resolve`: `region.get(ptr)` of a small and of a 64 KiB object, and `lookup` by name:
//!   the checks every handle into a region pays (bounds, block, neighbours, type).

use std::hint::black_box;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use lockkit::grp::GrpLock;
use lockkit::raw::{PosixSem, PthreadMutex, Spin};
use lockkit::{locked, shared_locked, GenLock, GenLockSet, GenRwLockSet, ShmMutex, ShmRegion};

mod common;
use common::GlibcMutex;

#[shared_locked]
struct Counter {
    lock: GenLock,
    #[guarded_by(lock)]
    n: u64,
}

#[shared_locked]
struct Striped {
    stripes: GenLockSet<16>,
    #[striped_by(stripes)]
    cells: [u64; 256],
    rw_stripes: GenRwLockSet<16>,
    #[striped_by(rw_stripes)]
    rw_cells: [u64; 256],
}

/// The least a lock that can sleep pays: take the word with a compare-exchange, release it
/// with a swap that tells whether anyone waits.
#[inline]
fn cas_swap(word: &AtomicU32) {
    if word
        .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
        .is_ok()
        && word.swap(0, Ordering::Release) & 0x8000_0000 != 0
    {
        unreachable!("nobody waits in this benchmark");
    }
}

fn uncontended(c: &mut Criterion) {
    // glibc takes a single-thread fast path until the process has created a thread.
    std::thread::spawn(|| {}).join().unwrap();
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    let raw_word = region.alloc_zeroed::<[AtomicU32; 16]>().unwrap();
    let lock = region.alloc_zeroed::<lockkit::GenLockSet<1>>().unwrap();
    let (pthread, _p) = GlibcMutex::new(&region, false);
    let (robust, _r) = GlibcMutex::new(&region, true);
    let std_mutex = std::sync::Mutex::new(());

    let mut g = c.benchmark_group("uncontended");
    g.bench_function("cas_swap_floor", |b| {
        b.iter(|| cas_swap(black_box(&raw_word[0])))
    });
    g.bench_function("GenLock", |b| b.iter(|| drop(black_box(&lock[0]).lock())));
    g.bench_function("pthread_pshared", |b| {
        b.iter(|| black_box(&pthread).lock_unlock())
    });
    g.bench_function("pthread_pshared_robust", |b| {
        b.iter(|| black_box(&robust).lock_unlock())
    });
    g.bench_function("std_mutex", |b| {
        b.iter(|| drop(black_box(&std_mutex).lock()))
    });
    let spin = region.alloc_zeroed::<GenLock<Spin>>().unwrap();
    let pthread_backend = region.alloc_zeroed::<GenLock<PthreadMutex>>().unwrap();
    let sem = region.alloc_zeroed::<GenLock<PosixSem>>().unwrap();
    g.bench_function("GenLock_Spin", |b| {
        b.iter(|| drop(black_box(&*spin).lock()))
    });
    g.bench_function("GenLock_PthreadMutex", |b| {
        b.iter(|| drop(black_box(&*pthread_backend).lock()))
    });
    g.bench_function("GenLock_PosixSem", |b| {
        b.iter(|| drop(black_box(&*sem).lock()))
    });
    g.finish();
}

fn guard_forms(c: &mut Criterion) {
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    let m = region.alloc(ShmMutex::new(0u64)).unwrap();
    let counter = region.alloc_zeroed::<Counter>().unwrap();

    let mut g = c.benchmark_group("guard_forms");
    g.bench_function("hand_written_guard", |b| {
        b.iter(|| {
            let mut guard = black_box(&*m).lock();
            *guard += 1;
        })
    });
    g.bench_function("locked_macro", |b| {
        b.iter(|| locked!(guard = black_box(&*m) => { *guard += 1 }))
    });
    g.bench_function("shared_locked_accessor", |b| {
        b.iter(|| black_box(&*counter).lock_lock().n += 1)
    });
    g.finish();
}

fn striped(c: &mut Criterion) {
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    let t = region.alloc_zeroed::<Striped>().unwrap();
    let mut g = c.benchmark_group("striped");
    let mut i = 0usize;
    g.bench_function("GenLockSet_lock", |b| {
        b.iter(|| {
            i = (i + 7) & 255;
            black_box(*black_box(&*t).lock_cells(i))
        })
    });
    g.bench_function("GenRwLockSet_read", |b| {
        b.iter(|| {
            i = (i + 7) & 255;
            black_box(*black_box(&*t).read_rw_cells(i))
        })
    });
    g.bench_function("GenRwLockSet_write", |b| {
        b.iter(|| {
            i = (i + 7) & 255;
            *black_box(&*t).write_rw_cells(i) += 1
        })
    });
    g.finish();
}

fn group(c: &mut Criterion) {
    let lock = GenLock::new();
    let grp = GrpLock::new();
    let mut g = c.benchmark_group("group");
    // The guards go through black_box too: without it the compiler may drop work that the
    // group lock's guard does and a GenLock's does not (BENCHMARKS.md, benches/grp_lock.rs).
    g.bench_function("GenLock", |b| {
        b.iter(|| drop(black_box(black_box(&lock).lock())))
    });
    g.bench_function("GrpLock_no_chain", |b| {
        b.iter(|| drop(black_box(black_box(&grp).lock())))
    });
    g.finish();
}

fn resolve(c: &mut Criterion) {
    let region = ShmRegion::anonymous(4 << 20).unwrap();
    let _before = region.alloc(0u64).unwrap();
    let small = region.alloc(ShmMutex::new(7u64)).unwrap();
    let big = region.alloc_zeroed::<[u64; 8192]>().unwrap();
    let _after = region.alloc(0u64).unwrap();
    region.publish("small", &small).unwrap();
    let (small, big) = (small.ptr(), big.ptr());
    let mut g = c.benchmark_group("resolve");
    g.bench_function("get_small", |b| {
        b.iter(|| black_box(region.get(black_box(small)).unwrap()))
    });
    g.bench_function("get_64KiB", |b| {
        b.iter(|| black_box(region.get(black_box(big)).unwrap()))
    });
    g.bench_function("lookup", |b| {
        b.iter(|| black_box(region.lookup::<ShmMutex<u64>>(black_box("small")).unwrap()))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50);
    targets = uncontended, guard_forms, striped, group, resolve
}
criterion_main!(benches);
