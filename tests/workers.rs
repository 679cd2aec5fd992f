//! `lockkit::workers`: forked workers that die with their parent, reaped with a deadline,
//! each one's end reported, and the locks a killed one held named (issue 24.5).
//!
//! No test harness (`harness = false`): `Workers::spawn` forks only from a process with one
//! thread, and the harness would run these on threads of its own. Every wait has a deadline.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicU32, Ordering::*};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lockkit::workers::{Workers, PANIC_EXIT_CODE};
use lockkit::{Error, GenLockGuard, ShmMutex, ShmRegion};

const DEADLINE: Duration = Duration::from_secs(60);

/// Runs until `DEADLINE`, then exits with 3 (a kill that never came shows as code 3).
fn linger() -> i32 {
    let t0 = Instant::now();
    while t0.elapsed() < DEADLINE {
        std::thread::sleep(Duration::from_millis(5));
    }
    3
}

fn each_end_is_reported_as_an_exit_code_or_a_signal() {
    let mut workers = Workers::new();
    let ok = workers.spawn(|| 0).unwrap();
    let seven = workers.spawn(|| 7).unwrap();
    let panics = workers
        .spawn(|| {
            std::panic::set_hook(Box::new(|_| {}));
            panic!("a worker's panic")
        })
        .unwrap();
    let killed = workers.spawn(linger).unwrap();
    assert!(workers.kill(killed, libc::SIGKILL).unwrap());
    let ended = workers.wait_all(DEADLINE).unwrap();
    let codes: Vec<_> = ended
        .iter()
        .map(|e| e.status.map(|s| (s.code(), s.signal())))
        .collect();
    assert_eq!(
        codes,
        [
            Some((Some(0), None)),
            Some((Some(7), None)),
            Some((Some(PANIC_EXIT_CODE), None)),
            Some((None, Some(libc::SIGKILL))),
        ]
    );
    assert_eq!((ok, seven, panics, killed), (0, 1, 2, 3));
    assert_eq!(ended[3].pid, workers.pid(3));
    let text = ended[3].to_string();
    assert!(text.ends_with("killed by signal 9 (SIGKILL)"), "{text}");
    assert!(ended[1].to_string().ends_with("exited with code 7"));
    // Reaped: its pid may be another process's now, so it is not signalled again.
    assert!(!workers.kill(killed, libc::SIGKILL).unwrap());
}

fn spawn_refuses_while_another_thread_runs() {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || rx.recv().ok());
    let mut workers = Workers::new();
    match workers.spawn(|| 0) {
        Err(Error::ForkWithThreads { threads: 2 }) => {}
        other => panic!("forked beside a thread: {other:?}"),
    }
    assert!(workers.is_empty());
    drop(tx);
    t.join().unwrap();
    // The thread is gone (the kernel may list it a moment longer: wait for that).
    let t0 = Instant::now();
    while std::fs::read_dir("/proc/self/task").unwrap().count() > 1 {
        assert!(t0.elapsed() < DEADLINE, "the joined thread is still listed");
        std::thread::sleep(Duration::from_millis(1));
    }
    let i = workers.spawn(|| 0).unwrap();
    assert_eq!(workers.wait(i, DEADLINE).unwrap().unwrap().code(), Some(0));
}

fn a_worker_dies_with_its_parent_whenever_the_parent_dies() {
    // Each round: a middle process forks a worker and dies, at once (often before the
    // worker asked to die with it) or a little later (after). The worker holds one end of
    // a socket pair; reading the other end here sees end-of-file once every holder is
    // gone, that is, once the worker is dead too.
    let (mut started, mut orphaned) = (0, 0);
    for round in 0..12 {
        let (mut ours, theirs) = UnixStream::pair().unwrap();
        let mut middle = Workers::new();
        let m = middle
            .spawn(move || {
                let mut workers = Workers::new();
                workers
                    .spawn(move || {
                        // Got past the death-with-parent set-up: says so, then waits to die.
                        let _ = (&theirs).write_all(b"w");
                        linger()
                    })
                    .unwrap();
                if round % 2 == 1 {
                    std::thread::sleep(Duration::from_millis(20));
                }
                // Not dropped: dropping would kill the worker, which must die of our death.
                std::mem::forget(workers);
                0
            })
            .unwrap();
        // `theirs` went with the closure, which `spawn` dropped here after the fork.
        assert_eq!(middle.wait(m, DEADLINE).unwrap().unwrap().code(), Some(0));
        ours.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut seen = Vec::new();
        match ours.read_to_end(&mut seen) {
            Ok(_) => {}
            Err(e) => {
                panic!("round {round}: the worker outlived its parent ({e}); it wrote {seen:?}")
            }
        }
        if seen.is_empty() {
            orphaned += 1;
        } else {
            started += 1;
        }
    }
    println!("  workers that started, then died with their parent: {started}; that saw it dead first: {orphaned}");
}

fn held_by_names_the_locks_a_killed_worker_held() {
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    let table = Arc::new(region.alloc(ShmMutex::new(0u64)).unwrap());
    let stripes = Arc::new(region.alloc_lock_set(4).unwrap());
    let step = Arc::new(region.alloc(AtomicU32::new(0)).unwrap());
    region.publish("table", &table).unwrap();
    region.publish_lock_set("stripes", &stripes).unwrap();
    let mut workers = Workers::new();
    let idle = workers.spawn(linger).unwrap();
    let doomed = workers
        .spawn({
            let (table, stripes, step) = (table.clone(), stripes.clone(), step.clone());
            move || {
                let mut t = table.lock();
                *t = 1;
                let _s = stripes.lock(2);
                step.store(1, Release);
                linger()
            }
        })
        .unwrap();
    common::wait_for(&step, 1);
    workers.kill(doomed, libc::SIGKILL).unwrap();
    let status = workers.wait(doomed, DEADLINE).unwrap().expect("killed");
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    let held = workers.held_by(doomed, &region);
    let mut places: Vec<String> = held.iter().map(|l| l.place()).collect();
    places.sort();
    assert_eq!(places, ["stripes[2]", "table"], "{held:?}");
    for l in &held {
        let h = l.holder.unwrap();
        assert_eq!(h.pid, workers.pid(doomed));
        assert!(!h.alive, "{l:?}");
    }
    assert!(workers.held_by(idle, &region).is_empty());
    // The next holder is told.
    let t = table.lock();
    assert!(lockkit::ShmMutexGuard::owner_died(&t));
    assert_eq!(*t, 1);
    drop(t);
    let g = stripes.lock(2);
    assert!(GenLockGuard::owner_died(&g));
    drop(g);
    // Dropping the supervisor kills and reaps the idle one.
    drop(workers);
}

fn main() {
    let tests: [(&str, fn()); 4] = [
        (
            "each_end_is_reported_as_an_exit_code_or_a_signal",
            each_end_is_reported_as_an_exit_code_or_a_signal,
        ),
        (
            "spawn_refuses_while_another_thread_runs",
            spawn_refuses_while_another_thread_runs,
        ),
        (
            "a_worker_dies_with_its_parent_whenever_the_parent_dies",
            a_worker_dies_with_its_parent_whenever_the_parent_dies,
        ),
        (
            "held_by_names_the_locks_a_killed_worker_held",
            held_by_names_the_locks_a_killed_worker_held,
        ),
    ];
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    for (name, test) in tests {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        println!("test {name} ...");
        test();
        println!("test {name} ... ok");
    }
}
