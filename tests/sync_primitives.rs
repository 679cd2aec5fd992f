//! The recursive lock, the reader-writer lock and the semaphore, across forked processes.

mod common;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};
use std::time::{Duration, Instant};

use common::{fork, run_children, serial, wait_for};
use lockkit::{RecLock, RwLock, ShmRegion, ShmSemaphore};

#[test]
fn a_recursive_lock_counts_depth_and_excludes_other_processes() {
    let _s = serial();
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    let shared = region.alloc_zeroed::<(RecLock, AtomicU64)>().unwrap();
    let (lock, counter) = (&shared.0, &shared.1);
    {
        let a = lock.lock();
        let b = lock.try_lock().expect("the holder may take it again");
        assert_eq!(lock.depth(), 2);
        let child = fork(|| {
            let busy = lock.try_lock().is_none() && lock.depth() == 0;
            i32::from(!busy)
        });
        assert_eq!(child.join(), 0, "another process was kept out");
        drop(b);
        assert!(lock.is_locked(), "still held at depth 1");
        drop(a);
    }
    assert!(!lock.is_locked());
    run_children(4, |_| {
        for _ in 0..20_000 {
            let _outer = lock.lock();
            let _inner = lock.lock();
            counter.store(counter.load(Relaxed) + 1, Relaxed);
        }
        0
    });
    assert_eq!(counter.load(Relaxed), 80_000);
}

#[test]
fn readers_share_a_reader_writer_lock_across_processes() {
    let _s = serial();
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let rw = region.alloc_zeroed::<RwLock<u64>>().unwrap();
    let r = rw.read();
    let child = fork(|| {
        let shared_ok = rw.try_read().is_some();
        let writer_kept_out = rw.try_write().is_none();
        i32::from(!(shared_ok && writer_kept_out))
    });
    assert_eq!(child.join(), 0);
    assert_eq!(rw.readers(), Some(1));
    drop(r);
    let w = rw.write();
    assert_eq!(rw.readers(), None);
    assert!(rw.try_read().is_none());
    assert!(rw.try_read_for(Duration::from_millis(30)).is_none());
    drop(w);
}

#[test]
fn writers_and_readers_keep_the_data_consistent() {
    let _s = serial();
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    // Writers keep both halves equal; a reader that sees them differ saw a torn write.
    let rw = region.alloc_zeroed::<RwLock<(u64, u64)>>().unwrap();
    run_children(4, |w| {
        for _ in 0..5_000 {
            if w % 2 == 0 {
                let mut g = rw.write();
                g.0 += 1;
                std::hint::spin_loop();
                g.1 += 1;
            } else {
                let g = rw.read();
                if g.0 != g.1 {
                    return 1;
                }
            }
        }
        0
    });
    let g = rw.read();
    assert_eq!(*g, (10_000, 10_000));
}

#[test]
fn a_writer_gets_in_while_readers_keep_arriving() {
    let _s = serial();
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let shared = region
        .alloc_zeroed::<(RwLock<u64>, AtomicU32, AtomicU32)>()
        .unwrap();
    let (rw, stop, started) = (&shared.0, &shared.1, &shared.2);
    // Three reader processes whose read sections overlap, so without writer preference
    // the lock would never be free of readers.
    let readers: Vec<_> = (0..3)
        .map(|_| {
            fork(|| {
                started.fetch_add(1, Release);
                let t0 = Instant::now();
                while stop.load(Acquire) == 0 && t0.elapsed() < Duration::from_secs(30) {
                    let _g = rw.read();
                    std::thread::sleep(Duration::from_micros(300));
                }
                0
            })
        })
        .collect();
    wait_for(started, 3);
    std::thread::sleep(Duration::from_millis(20));
    let t0 = Instant::now();
    let got = rw
        .try_write_for(Duration::from_secs(5))
        .map(|mut g| *g += 1);
    let waited = t0.elapsed();
    stop.store(1, Release);
    for r in readers {
        assert_eq!(r.join(), 0);
    }
    assert!(got.is_some(), "the writer starved for {waited:?}");
    assert!(
        waited < Duration::from_secs(1),
        "the writer waited {waited:?}"
    );
    assert_eq!(*rw.read(), 1);
}

#[test]
fn a_semaphore_carries_wake_ups_from_one_process_to_others() {
    let _s = serial();
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let shared = region.alloc_zeroed::<(ShmSemaphore, AtomicU64)>().unwrap();
    let (sem, consumed) = (&shared.0, &shared.1);
    assert_eq!(sem.value(), 0, "zero bytes hold no token");
    let consumers: Vec<_> = (0..3)
        .map(|_| {
            fork(|| {
                for _ in 0..1_000 {
                    if !sem.wait_for(Duration::from_secs(20)) {
                        return 1;
                    }
                    consumed.fetch_add(1, Relaxed);
                }
                0
            })
        })
        .collect();
    let producer = fork(|| {
        for _ in 0..3_000 {
            sem.post();
        }
        0
    });
    assert_eq!(producer.join(), 0);
    for c in consumers {
        assert_eq!(c.join(), 0, "a consumer missed a wake-up");
    }
    assert_eq!(consumed.load(Relaxed), 3_000);
    assert_eq!(sem.value(), 0);
    let t0 = Instant::now();
    assert!(!sem.wait_for(Duration::from_millis(50)));
    assert!(t0.elapsed() >= Duration::from_millis(50));
}
