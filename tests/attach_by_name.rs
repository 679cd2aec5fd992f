//! Unrelated processes (spawned and exec'd, not forked) attach to a named region, find its
//! objects through named roots and contend on its locks with the creator.
//!
//! The spawned processes are this same test binary, started with a filter that runs only
//! `spawned_worker` and an environment variable that tells it which region to attach to.

mod common;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use lockkit::{ShmMutex, ShmRegion};

const REGION_VAR: &str = "LOCKKIT_TEST_ATTACH_REGION";
const ROUNDS: u64 = 100_000;
const SPAWNED: usize = 3;

/// Not a test of its own: the body of a spawned worker, run only when the environment names
/// a region (the harness runs it as a no-op otherwise).
#[test]
fn spawned_worker() {
    let Ok(name) = std::env::var(REGION_VAR) else {
        return;
    };
    let region = ShmRegion::open(&name).unwrap_or_else(|e| panic!("attach by name: {e}"));
    let total = region
        .lookup::<ShmMutex<u64>>("total")
        .unwrap_or_else(|e| panic!("find the counter: {e}"));
    let set = region
        .lookup_lock_set("stripes")
        .unwrap_or_else(|e| panic!("find the stripes: {e}"));
    let stripes = region
        .lookup::<[AtomicU64; 8]>("per-stripe")
        .unwrap_or_else(|e| panic!("find the stripe counters: {e}"));
    for k in 0..ROUNDS {
        *total.lock() += 1;
        let i = set.index_for(&(k ^ u64::from(std::process::id())));
        let _g = set.lock(i);
        stripes[i].store(stripes[i].load(Relaxed) + 1, Relaxed);
    }
}

#[test]
fn spawned_processes_attach_by_name_and_the_totals_are_exact() {
    let name = common::unique_name("attach");
    let region = ShmRegion::create(&name, 1 << 20).unwrap();
    let total = region.alloc(ShmMutex::new(0u64)).unwrap();
    let set = region.alloc_lock_set(8).unwrap();
    let stripes = region.alloc_zeroed::<[AtomicU64; 8]>().unwrap();
    region.publish("total", &total).unwrap();
    region.publish_lock_set("stripes", &set).unwrap();
    region.publish("per-stripe", &stripes).unwrap();

    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..SPAWNED)
        .map(|_| {
            Command::new(&exe)
                .args(["spawned_worker", "--exact", "--test-threads=1"])
                .env(REGION_VAR, &name)
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    // The creator contends too.
    for k in 0..ROUNDS {
        *total.lock() += 1;
        let i = set.index_for(&k);
        let _g = set.lock(i);
        stripes[i].store(stripes[i].load(Relaxed) + 1, Relaxed);
    }
    for mut c in children {
        assert!(c.wait().unwrap().success(), "a spawned worker failed");
    }
    let expected = (SPAWNED as u64 + 1) * ROUNDS;
    assert_eq!(*total.lock(), expected);
    assert_eq!(
        stripes.iter().map(|s| s.load(Relaxed)).sum::<u64>(),
        expected
    );
}

#[test]
fn a_spawned_process_asking_for_the_wrong_type_gets_a_type_error() {
    let name = common::unique_name("wrongtype");
    let region = ShmRegion::create(&name, 1 << 16).unwrap();
    let total = region.alloc(ShmMutex::new(0u32)).unwrap();
    region.publish("total", &total).unwrap();
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(&exe)
        .args([
            "spawned_worker",
            "--exact",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(REGION_VAR, &name)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("holds another layout"), "{text}");
    // After the lock: 4 bytes, or 24 with the `lock-debug` words, rounded up for the u64.
    let at = std::mem::size_of::<lockkit::GenLock>().next_multiple_of(8);
    assert!(
        text.contains(&format!(
            "field `data` at offset {at}: u64 here, u32 in the region"
        )),
        "the message names the field that differs: {text}"
    );
}
