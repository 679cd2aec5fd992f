//! A Kamailio-htable-like table in a named region, worked on by four forked workers.
//!
//! ```text
//! cargo run -p htable                       # region /lockkit-htable, removed at the end
//! cargo run -p htable -- --keep             # leave it, then:
//! cargo run -p htable --bin htable-dump -- /lockkit-htable
//! cargo run -p htable -- --dump-after-kill  # runs htable-dump on the live region after the kill
//! ```
//!
//! The parent creates the named region, allocates the table ([`htable::HTable`]: 1024
//! buckets striped over 16 locks, string keys and values, expiry) and publishes it, forks the
//! workers with `lockkit::workers`, and feeds them jobs through a queue in the table; the
//! workers sleep on a `ShmCondvar` until there is a job, and the parent sleeps on another
//! until the jobs are done. The phases, each with an exact expected result:
//!
//! 1. set every key (`key-0` .. `key-1023`), one in four with a short expiry;
//! 2. set the first 256 keys again with a new value (updates);
//! 3. one worker starts a set, and is SIGKILLed while it holds the bucket's stripe with the
//!    cell half-written; the parent asks the region which lock the dead worker held;
//! 4. look every key up: the first worker to take the dead worker's stripe is told the owner
//!    died and repairs the whole stripe (all 64 of its buckets) under that one hold;
//! 5. the clock moves past the short expiry and each stripe is expired;
//! 6. look every key up again; then the workers stop and the table is checked.
//!
//! Ends with `verified: ... OK` (exit 0) or `FAILED: ...` (exit 1).

use std::process::ExitCode;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use htable::{
    bucket_of, key, value, CellState, HTable, Job, JobKind, SetOutcome, WorkerStats, BUCKETS,
    MAX_WORKERS, ROOT, STRIPES,
};
use lockkit::workers::Workers;
use lockkit::{RegionSize, ShmRegion, ShmStr};

/// Keys in the workload.
const KEYS: u32 = 1024;
/// Keys per job.
const BATCH: u32 = 32;
/// The keys set again in phase 2 (`0..UPDATED`).
const UPDATED: u32 = 256;
/// The expiry of one key in four (`n % 4 == 0`); the others expire at `LONG`.
const SHORT: u64 = 5;
const LONG: u64 = 1_000_000;
/// How long any wait may take before the program gives up and says what it saw: only a hang
/// reaches it, never a slow machine.
const DEADLINE: Duration = Duration::from_secs(60);
/// The key the doomed worker was writing when it was killed.
const DOOMED_KEY: &str = "doomed-key";

struct Args {
    name: String,
    workers: usize,
    keep: bool,
    /// Run `htable-dump` on the live region right after the kill, before the repair.
    dump_after_kill: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        name: "/lockkit-htable".into(),
        workers: 4,
        keep: false,
        dump_after_kill: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--name" => a.name = it.next().ok_or("--name needs a region name (/NAME)")?,
            "--workers" => {
                a.workers = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n| (2..=MAX_WORKERS).contains(&n))
                    .ok_or(format!("--workers needs a number from 2 to {MAX_WORKERS}"))?
            }
            "--keep" => a.keep = true,
            "--dump-after-kill" => a.dump_after_kill = true,
            _ => {
                return Err(format!(
                    "unknown argument {flag}\nusage: htable [--name /NAME] [--workers N] \
                     [--keep] [--dump-after-kill]"
                ))
            }
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(line) => {
            println!("verified: {line} OK");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A worker: takes jobs until told to stop. Its return value is its exit code.
fn worker(table: &HTable, w: usize) -> i32 {
    let stats = &table.stats[w];
    loop {
        let Some(job) = table.next_job(DEADLINE) else {
            eprintln!("htable: worker {w} had no job for {DEADLINE:?}: giving up");
            return 3;
        };
        match job.kind {
            JobKind::Set => {
                for n in job.first..job.first + job.count {
                    let expires = if n % 4 == 0 { SHORT } else { LONG };
                    let counter = match table.set(&key(n), &value(n, job.version), expires, stats) {
                        SetOutcome::Inserted => &stats.inserted,
                        SetOutcome::Updated => &stats.updated,
                        SetOutcome::Full => &stats.full,
                    };
                    counter.fetch_add(1, Relaxed);
                }
            }
            JobKind::Lookup => {
                let now = table.now();
                for n in job.first..job.first + job.count {
                    let got = table.get(&key(n), stats);
                    stats.lookups.fetch_add(1, Relaxed);
                    let version = if n < UPDATED { 2 } else { 1 };
                    let live = n % 4 != 0 || now < SHORT;
                    match got {
                        Some(v) if live && v == *value(n, version) => {
                            stats.hits.fetch_add(1, Relaxed);
                        }
                        None if !live => {}
                        _ => {
                            stats.wrong.fetch_add(1, Relaxed);
                        }
                    }
                }
            }
            JobKind::Expire => {
                let dropped = table.expire_stripe(job.first as usize, stats);
                stats.expired.fetch_add(dropped as u64, Relaxed);
            }
            JobKind::SetAndDie => set_and_die(table, w),
            JobKind::Stop => return 0,
            JobKind::None => {
                eprintln!("htable: worker {w} took an empty job");
                return 4;
            }
        }
        table.job_finished();
    }
}

/// Starts inserting [`DOOMED_KEY`] and stops half-way, holding the bucket's stripe, for the
/// parent to kill it: what a worker that crashes in the middle of an update leaves.
fn set_and_die(table: &HTable, w: usize) -> ! {
    let b = bucket_of(DOOMED_KEY);
    let mut g = table.write_bucket(b);
    let cell = g
        .cells
        .iter_mut()
        .find(|c| c.state == CellState::Free)
        .expect("the doomed key's bucket has a free cell");
    cell.state = CellState::Writing;
    cell.key = ShmStr::truncated(DOOMED_KEY);
    // ... the value and expiry would be written here: the worker is killed first.
    {
        let mut q = table.lock_jobs();
        q.queue.doomed = w as u32 + 1;
        q.queue.doomed_stripe = g.stripe() as u32;
    }
    table.done.notify_all();
    loop {
        // Holds the stripe until the parent's SIGKILL.
        std::thread::park();
    }
}

/// Waits until `finished` jobs are done (or, with `doomed`, until a worker holds its stripe
/// for the kill), at most [`DEADLINE`]; the error says what the queue looked like.
fn wait_for(table: &HTable, what: &str, finished: u32, doomed: bool) -> Result<(), String> {
    let mut q = table.lock_jobs();
    let waited = table.done.wait_while_for(&mut q, DEADLINE, |q| {
        if doomed {
            q.queue.doomed == 0
        } else {
            q.queue.finished < finished
        }
    });
    if waited.timed_out() {
        return Err(format!(
            "{what}: not done after {DEADLINE:?}: {} jobs pushed, {} taken, {} finished \
             (waiting for {finished}), doomed worker {}",
            q.queue.pushed,
            q.queue.taken,
            q.queue.finished,
            q.queue.doomed as i64 - 1
        ));
    }
    Ok(())
}

/// Runs `htable-dump` (beside this program) on the live region, while the workers wait for
/// their next job and the dead worker's stripe is not repaired yet, and prints its summary.
fn dump_live(name: &str) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dump = exe.with_file_name("htable-dump");
    let out = std::process::Command::new(&dump)
        .arg(name)
        .output()
        .map_err(|e| format!("{}: {e}", dump.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "htable-dump {name}: {}: {text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    for line in text.lines().filter(|l| !l.starts_with("bucket ")) {
        println!("  htable-dump (live): {line}");
    }
    Ok(())
}

/// Jobs for every key, `BATCH` at a time.
fn batches(kind: JobKind, keys: u32, version: u32) -> impl Iterator<Item = Job> {
    (0..keys).step_by(BATCH as usize).map(move |first| Job {
        kind,
        first,
        count: BATCH.min(keys - first),
        version,
    })
}

/// The sum of one statistic over the workers.
fn total(table: &HTable, f: impl Fn(&WorkerStats) -> &std::sync::atomic::AtomicU64) -> u64 {
    table.stats.iter().map(|s| f(s).load(Relaxed)).sum()
}

fn run(a: &Args) -> Result<String, String> {
    let size = RegionSize::new()
        .object::<HTable>()
        .roots(1)
        .bytes()
        .map_err(|e| e.to_string())?;
    // A region left by an earlier `--keep` run goes first (as the registrar does).
    let _ = ShmRegion::unlink(&a.name);
    let region = ShmRegion::create(&a.name, size).map_err(|e| format!("{}: {e}", a.name))?;
    let table = region.alloc_zeroed::<HTable>().map_err(|e| e.to_string())?;
    region.publish(ROOT, &table).map_err(|e| e.to_string())?;
    if a.keep {
        region.keep_name();
    }
    println!(
        "htable: region {} ({} KiB), {BUCKETS} buckets over {STRIPES} stripes, {} workers",
        a.name,
        size / 1024,
        a.workers
    );

    let mut workers = Workers::new();
    let table = std::sync::Arc::new(table);
    for w in 0..a.workers {
        let t = std::sync::Arc::clone(&table);
        workers
            .spawn(move || worker(&t, w))
            .map_err(|e| e.to_string())?;
    }

    // Jobs pushed that will finish (the doomed one never does).
    let mut pushed = 0u32;
    let mut phase = |what: &str, jobs: Vec<Job>| -> Result<(), String> {
        pushed += jobs.len() as u32;
        if !table.push_jobs(jobs) {
            return Err(format!("{what}: the job queue is full"));
        }
        wait_for(&table, what, pushed, false)?;
        println!("  {what}: done");
        Ok(())
    };

    phase("1. set every key", batches(JobKind::Set, KEYS, 1).collect())?;
    phase(
        "2. set the first keys again",
        batches(JobKind::Set, UPDATED, 2).collect(),
    )?;

    // 3. A worker dies holding a stripe.
    table.push_jobs([Job {
        kind: JobKind::SetAndDie,
        first: 0,
        count: 1,
        version: 0,
    }]);
    wait_for(&table, "3. a worker holds a stripe", 0, true)?;
    let (doomed, stripe) = {
        let q = table.lock_jobs();
        (q.queue.doomed as usize - 1, q.queue.doomed_stripe)
    };
    workers
        .kill(doomed, libc::SIGKILL)
        .map_err(|e| e.to_string())?;
    let status = workers
        .wait(doomed, DEADLINE)
        .map_err(|e| e.to_string())?
        .ok_or(format!(
            "worker {doomed} still runs {DEADLINE:?} after SIGKILL"
        ))?;
    let held: Vec<String> = workers
        .held_by(doomed, &region)
        .iter()
        .map(|l| l.place())
        .collect();
    println!(
        "  3. killed worker {doomed} (pid {}) while it held stripe {stripe} with a cell \
         half-written: {status}; the region's report says it held: {}",
        workers.pid(doomed),
        held.join(", ")
    );
    if held != [format!("{ROOT}.stripes[{stripe}]")] {
        return Err(format!(
            "the report names {held:?} as held by the dead worker, not {ROOT}.stripes[{stripe}]"
        ));
    }
    if a.dump_after_kill {
        dump_live(&a.name)?;
    }
    phase(
        "4. look every key up",
        batches(JobKind::Lookup, KEYS, 0).collect(),
    )?;
    table.now.store(SHORT, Relaxed);
    phase(
        "5. expire every stripe",
        (0..STRIPES as u32)
            .map(|s| Job {
                kind: JobKind::Expire,
                first: s,
                count: 0,
                version: 0,
            })
            .collect(),
    )?;
    phase(
        "6. look every key up again",
        batches(JobKind::Lookup, KEYS, 0).collect(),
    )?;

    let alive = a.workers - 1;
    table.push_jobs((0..alive).map(|_| Job {
        kind: JobKind::Stop,
        first: 0,
        count: 0,
        version: 0,
    }));
    for ended in workers.wait_all(DEADLINE).map_err(|e| e.to_string())? {
        let ok = if ended.index == doomed {
            ended.killed_by() == Some(libc::SIGKILL)
        } else {
            ended.status.is_some_and(|s| s.success())
        };
        if !ok {
            return Err(format!("{ended}"));
        }
    }

    check(&table, doomed, stripe as usize)
}

/// The exact results every phase must have left, from the workers' statistics and from the
/// table itself.
fn check(table: &HTable, doomed: usize, stripe: usize) -> Result<String, String> {
    let expired = u64::from(KEYS / 4);
    let live = u64::from(KEYS) - expired;
    let expect = [
        ("inserted", total(table, |s| &s.inserted), u64::from(KEYS)),
        ("updated", total(table, |s| &s.updated), u64::from(UPDATED)),
        ("refused (bucket full)", total(table, |s| &s.full), 0),
        ("lookups", total(table, |s| &s.lookups), 2 * u64::from(KEYS)),
        ("hits", total(table, |s| &s.hits), u64::from(KEYS) + live),
        ("wrong values", total(table, |s| &s.wrong), 0),
        ("expired", total(table, |s| &s.expired), expired),
        ("stripe repairs", total(table, |s| &s.repairs), 1),
        ("half-written cells freed", total(table, |s| &s.freed), 1),
    ];
    let mut wrong = Vec::new();
    for (what, got, want) in expect {
        println!("  {what}: {got} (expected {want})");
        if got != want {
            wrong.push(format!("{what}: {got}, expected {want}"));
        }
    }
    // The table itself: every live key once, with its value; every bucket's count right;
    // every stripe consistent again.
    let mut seen = vec![0u32; KEYS as usize];
    let mut others = Vec::new();
    let mut bad_counts = 0;
    for b in 0..BUCKETS {
        let g = table.read_bucket(b);
        if lockkit::StripeReadGuard::owner_died(&g) {
            wrong.push(format!(
                "stripe {} is still marked inconsistent",
                g.stripe()
            ));
        }
        let cells: Vec<_> = g
            .cells
            .iter()
            .filter(|c| c.state != CellState::Free)
            .collect();
        if g.used as usize != cells.len() {
            bad_counts += 1;
        }
        for c in cells {
            match c
                .key
                .strip_prefix("key-")
                .and_then(|n| n.parse::<u32>().ok())
            {
                Some(n) if n < KEYS && c.state == CellState::Live => {
                    seen[n as usize] += 1;
                    let version = if n < UPDATED { 2 } else { 1 };
                    if c.value != *value(n, version) {
                        wrong.push(format!("{} = {}", c.key, c.value));
                    }
                }
                _ => others.push(format!("{} ({:?})", c.key, c.state)),
            }
        }
    }
    let missing = (0..KEYS)
        .filter(|&n| n % 4 != 0 && seen[n as usize] != 1)
        .count();
    let stale = (0..KEYS)
        .filter(|&n| n % 4 == 0 && seen[n as usize] != 0)
        .count();
    if missing + stale + bad_counts > 0 || !others.is_empty() {
        wrong.push(format!(
            "{missing} live keys missing or doubled, {stale} expired keys still there, \
             {bad_counts} buckets with a wrong count, other cells: {others:?}"
        ));
    }
    if !wrong.is_empty() {
        return Err(wrong.join("; "));
    }
    Ok(format!(
        "{} live keys, {expired} expired, worker {doomed} killed holding stripe {stripe}, \
         repaired once",
        live
    ))
}
