//! A parent maps a shared region, forks workers, and every worker increments shared counters
//! striped over a lock set, the way a pre-forked server updates its shared tables.
//!
//! ```text
//! cargo run --release --example forked_counter -- --workers 4 --rounds 1000000
//! ```
//!
//! It prints progress while the workers run and ends with
//! `total: <actual> expected: <expected> OK` (or `MISMATCH`, with exit status 1).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use lockkit::ShmRegion;

const STRIPES: usize = 16;
/// Workers report progress in batches, so the shared progress counter is not itself a
/// point of contention.
const BATCH: u64 = 4096;

struct Args {
    workers: usize,
    rounds: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        workers: 4,
        rounds: 1_000_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |what: &str| -> Result<u64, String> {
            let v = it.next().ok_or(format!("{flag} needs a value ({what})"))?;
            match v.parse::<u64>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!("{flag} expects a positive whole number, got {v:?}")),
            }
        };
        match flag.as_str() {
            "--workers" => args.workers = value("number of processes")? as usize,
            "--rounds" => args.rounds = value("increments per worker")?,
            "-h" | "--help" => {
                println!("usage: forked_counter [--workers N] [--rounds R]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(args)
}

/// The work of one forked worker: `rounds` increments of key-striped counters.
fn work(
    worker: usize,
    rounds: u64,
    set: &lockkit::LockSet,
    counters: &[AtomicU64],
    progress: &AtomicU64,
) {
    for k in 0..rounds {
        // A call id, say: different workers hit the same keys, so they contend.
        let key = k.wrapping_mul(0x9e37_79b9) ^ worker as u64;
        let i = set.index_for(&key);
        {
            let _stripe = set.lock(i);
            // Load, then store: a read-modify-write that only the stripe's lock keeps exact.
            counters[i].store(counters[i].load(Relaxed) + 1, Relaxed);
        }
        if (k + 1) % BATCH == 0 {
            progress.fetch_add(BATCH, Relaxed);
        }
    }
    progress.fetch_add(rounds % BATCH, Relaxed);
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args().unwrap_or_else(|e| {
        eprintln!("forked_counter: {e}");
        std::process::exit(2)
    });
    let region = ShmRegion::anonymous(1 << 20)?;
    let set = region.alloc_lock_set(STRIPES)?;
    let counters = region.alloc_zeroed::<[AtomicU64; STRIPES]>()?;
    let progress = region.alloc_zeroed::<AtomicU64>()?;
    let expected = args.workers as u64 * args.rounds;
    println!(
        "forked_counter: {} workers x {} increments over {} striped locks",
        args.workers, args.rounds, STRIPES
    );

    let start = Instant::now();
    let mut pids = Vec::new();
    for w in 0..args.workers {
        // SAFETY: this program is single-threaded here, so the child inherits no lock held
        // by another thread; the child only works on the shared region and `_exit`s.
        match unsafe { libc::fork() } {
            -1 => return Err(std::io::Error::last_os_error().into()),
            0 => {
                work(w, args.rounds, &set, &counters[..], &progress);
                // SAFETY: leave without running the parent's exit handlers twice.
                unsafe { libc::_exit(0) }
            }
            pid => pids.push(pid),
        }
    }

    let mut failed = 0;
    let mut running = pids.len();
    let mut last_report = Instant::now();
    while running > 0 {
        let mut status = 0;
        // SAFETY: reaping our own children with a valid status pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid > 0 {
            running -= 1;
            if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
                failed += 1;
                eprintln!("worker {pid} failed (status {status:#x})");
            }
            continue;
        }
        if pid < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        if last_report.elapsed() >= Duration::from_millis(250) {
            let done = progress.load(Relaxed);
            println!(
                "progress: {done} / {expected} ({:.0}%)",
                100.0 * done as f64 / expected as f64
            );
            last_report = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let elapsed = start.elapsed();

    let total: u64 = counters.iter().map(|c| c.load(Relaxed)).sum();
    let verdict = if total == expected && failed == 0 {
        "OK"
    } else {
        "MISMATCH"
    };
    println!("total: {total} expected: {expected} {verdict}");
    println!(
        "throughput: {:.2} M increments/s ({} workers, {:.3} s)",
        total as f64 / elapsed.as_secs_f64() / 1e6,
        args.workers,
        elapsed.as_secs_f64()
    );
    if verdict != "OK" {
        std::process::exit(1);
    }
    Ok(())
}
