//! A `#[shared_locked]` hash table in shared memory, its buckets striped over a lock set,
//! updated by forked workers: the shape of a SIP registrar's location table.
//!
//! ```text
//! cargo run --release --example shared_table -- --workers 4 --rounds 200000
//! ```
//!
//! Every worker counts hits for the same set of keys (call ids, say). A bucket is reachable
//! only through `lock_buckets(i)`, which holds the bucket's stripe; the table checks at the
//! end that every key got exactly `workers × rounds / keys` hits and prints
//! `total: <actual> expected: <expected> OK`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use lockkit::{shared_locked, GenLockSet, ShmRegion};

const BUCKETS: usize = 256;
const SLOTS: usize = 8;
const KEYS: u64 = 1000;

/// One key and its count. Plain data: `#[shared_locked]` with no locks just checks that it
/// can live in shared memory.
#[shared_locked]
struct Entry {
    key: u64,
    hits: u64,
}

#[shared_locked]
struct Bucket {
    used: u32,
    slots: [Entry; SLOTS],
}

#[shared_locked]
struct Table {
    stripes: GenLockSet<16>,
    #[striped_by(stripes)]
    buckets: [Bucket; BUCKETS],
    /// Keys that found their bucket full (none with these sizes).
    overflow: AtomicU64,
}

impl Table {
    /// Counts one hit for `key` (never 0: 0 marks a free slot).
    fn hit(&self, key: u64) {
        let mut bucket = self.lock_buckets(bucket_of(key));
        let used = bucket.used as usize;
        if let Some(e) = bucket.slots[..used].iter_mut().find(|e| e.key == key) {
            e.hits += 1;
        } else if used < SLOTS {
            bucket.slots[used] = Entry::new(key, 1);
            bucket.used += 1;
        } else {
            self.overflow.fetch_add(1, Relaxed);
        }
    }

    fn hits(&self, key: u64) -> u64 {
        let bucket = self.lock_buckets(bucket_of(key));
        let used = bucket.used as usize;
        bucket.slots[..used]
            .iter()
            .find(|e| e.key == key)
            .map_or(0, |e| e.hits)
    }
}

fn bucket_of(key: u64) -> usize {
    (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) as usize % BUCKETS
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        None => default,
        Some(i) => match args.get(i + 1).map(|v| v.parse::<u64>()) {
            Some(Ok(n)) if n > 0 => n,
            _ => {
                eprintln!("shared_table: {name} expects a positive whole number");
                std::process::exit(2);
            }
        },
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let workers = arg("--workers", 4) as usize;
    let rounds = arg("--rounds", 200_000);
    let rounds = rounds - rounds % KEYS; // every key the same number of times
    let region = ShmRegion::anonymous(4 << 20)?;
    let table = region.alloc_zeroed::<Table>()?;
    println!("shared_table: {workers} workers x {rounds} hits over {KEYS} keys, {BUCKETS} buckets");

    let start = Instant::now();
    let mut pids = Vec::new();
    for w in 0..workers {
        // SAFETY: single-threaded here; the child only works on the shared table and
        // `_exit`s.
        match unsafe { libc::fork() } {
            -1 => return Err(std::io::Error::last_os_error().into()),
            0 => {
                for k in 0..rounds {
                    // Workers walk the keys from different starting points, so they meet.
                    table.hit(1 + (k + w as u64 * 97) % KEYS);
                }
                // SAFETY: leave without running the parent's exit handlers.
                unsafe { libc::_exit(0) }
            }
            pid => pids.push(pid),
        }
    }
    let mut failed = 0;
    for pid in pids {
        let mut status = 0;
        // SAFETY: waiting for our own child with a valid status pointer.
        if unsafe { libc::waitpid(pid, &mut status, 0) } != pid
            || !libc::WIFEXITED(status)
            || libc::WEXITSTATUS(status) != 0
        {
            failed += 1;
        }
    }
    let elapsed = start.elapsed();

    let per_key = workers as u64 * rounds / KEYS;
    let wrong = (1..=KEYS).filter(|&k| table.hits(k) != per_key).count();
    let total: u64 = (1..=KEYS).map(|k| table.hits(k)).sum::<u64>() + table.overflow.load(Relaxed);
    let expected = workers as u64 * rounds;
    let ok = total == expected && wrong == 0 && failed == 0;
    println!(
        "keys with a wrong count: {wrong}, failed workers: {failed}, overflow: {}",
        table.overflow.load(Relaxed)
    );
    println!(
        "total: {total} expected: {expected} {}",
        if ok { "OK" } else { "MISMATCH" }
    );
    println!(
        "throughput: {:.2} M hits/s ({:.3} s)",
        total as f64 / elapsed.as_secs_f64() / 1e6,
        elapsed.as_secs_f64()
    );
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}
