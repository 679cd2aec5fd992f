//! The flagship: a pre-forked SIP registrar in the shape of Kamailio's usrloc and PJSIP's
//! dialogs, using everything lockkit has, and checking at the end that nothing was lost.
//!
//! ```text
//! cargo run --release -p registrar                      # 4 workers, 5 seconds
//! cargo run --release -p registrar -- --kill-one        # SIGKILL a worker holding a lock
//! cargo run --release -p registrar -- --compare         # striped table vs one global lock
//! cargo run -p lockkit --bin lockkit-top -- --watch /lockkit-registrar   # while it runs
//! ```
//!
//! - The parent creates the named region `/lockkit-registrar` and in it the location table:
//!   a `#[shared_locked]` struct whose 1024 buckets are striped over a `GenLockSet<16>`
//!   (bucket `i` is reachable only under stripe `i % 16`), and a log per worker.
//! - It forks the workers. Each runs REGISTER-like inserts and refreshes, lookups and
//!   expiries on its own address-of-records (so every binding has one owner to check it
//!   against), each under its bucket's stripe, and writes what it did to its log in shared
//!   memory.
//! - Inside each worker, as in PJSIP, two threads (request handling and a timer) share the
//!   worker's dialogs. A dialog is a group lock whose members (the dialog and its
//!   transaction, `#[grp_member]`) the group destroys when its last reference goes, and whose
//!   group lock chains the shared stripe lock of the dialog's bucket, so the two are always
//!   taken in one order.
//! - Once a second the parent prints the operations so far and the lock it saw held longest
//!   (from `region.report()`, which takes no lock). At the end it checks every bucket and
//!   every worker's bindings, refresh counts and dialogs against the workers' logs, prints a
//!   table, and ends with `verified: ... OK` (exit status 0), or `FAILED` (1).
//! - Ctrl-C stops the run early: the workers ignore it and are stopped through the table,
//!   the check runs on what they did, the region goes away, and the exit status is 130. A
//!   second Ctrl-C ends it at once (the workers die with the parent).
//! - `--compare` runs the same workload striped and with one global lock (every bucket
//!   operation and every dialog also under it), `--rounds` pairs (3) alternating which goes
//!   first, and prints both rates and their ratio.
//! - `--kill-one` makes worker 0 stop in the middle of an update, holding its bucket's
//!   stripe, at one of six steps chosen at random (`--kill-at STEP` picks one: `journaled`,
//!   `counted`, `written`, `half-logged`, `half-refreshed`, `cleared`), and SIGKILLs it
//!   there. The next worker to take that stripe is told the owner died, repairs the
//!   stripe's buckets (counts recounted from their slots, a half-done refresh rolled
//!   forward) and marks the lock consistent. Each update is journaled in the worker's log
//!   before the table changes (the update, the log's counters before it), and a slot's key
//!   is written last and cleared first, so the check can tell from the table whether the
//!   dead worker's last update landed, settle its log from the journal, explain what it had
//!   completed, and still pass.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::*};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use lockkit::grp::{FieldLock, GrpLock, WeakGrpLock};
use lockkit::workers::Workers;
use lockkit::{
    grp_member, locked, shared_locked, GenLock, GenLockSet, ShmBox, ShmRegion, ShmSafe, StripeGuard,
};

const BUCKETS: usize = 1024;
const SLOTS: usize = 8;
const STRIPES: usize = 16;
const MAX_WORKERS: usize = 16;
/// Address-of-records per worker (ids `1 + w * AORS + k`).
const AORS: u64 = 512;
const NAME: &str = "/lockkit-registrar";

/// One contact binding of an address-of-record; `aor == 0` is a free slot.
#[derive(ShmSafe, Clone, Copy)]
#[repr(C)]
struct Binding {
    aor: u64,
    expires: u64,
    cseq: u32,
    owner: u32,
    /// The contact URI, as the REGISTER carried it (checked at the end against the AOR).
    contact: [u8; 64],
}

impl Binding {
    const FREE: Binding = Binding {
        aor: 0,
        expires: 0,
        cseq: 0,
        owner: 0,
        contact: [0; 64],
    };
}

/// The contact a REGISTER for `aor` carries: `sip:<aor>@10.<..>:5060;transport=udp`.
fn contact_for(aor: u64) -> [u8; 64] {
    use std::io::Write;
    let mut c = [0u8; 64];
    let _ = write!(
        &mut c[..],
        "sip:{aor}@10.{}.{}.{}:5060;transport=udp",
        (aor >> 16) & 255,
        (aor >> 8) & 255,
        aor & 255
    );
    c
}

#[derive(ShmSafe, Clone, Copy)]
#[repr(C)]
struct Bucket {
    /// Slots in use: kept equal to the number of slots whose `aor` is set (a worker killed
    /// between the two leaves them apart; the next holder of the stripe repairs it).
    used: u32,
    _pad: u32,
    slots: [Binding; SLOTS],
}

/// What a worker did, written by it alone (atomics, so the parent can read it at any time).
/// Each log has cache lines of its own: counters of two workers on one line would bounce it
/// between their cores on every operation.
#[derive(ShmSafe)]
#[repr(C, align(128))]
struct WorkerLog {
    pid: AtomicU32,
    /// 0 not started, 1 running, 2 finished.
    state: AtomicU32,
    ops: AtomicU64,
    registers: AtomicU64,
    refreshes: AtomicU64,
    expiries: AtomicU64,
    lookups: AtomicU64,
    hits: AtomicU64,
    /// Bindings of this worker in the table, by its own count.
    live: AtomicU64,
    /// The sum of its bindings' cseq (each register counts 1, each refresh 1 more).
    cseq_sum: AtomicU64,
    /// The cseq its expiries took away: `cseq_sum` is exactly `registers + refreshes -
    /// expired_cseq`, so a refresh lost or counted twice shows.
    expired_cseq: AtomicU64,
    /// REGISTERs refused because the bucket was full.
    full: AtomicU64,
    dialogs_made: AtomicU64,
    dialogs_destroyed: AtomicU64,
    /// Times its threads marked the table under a dialog's group lock.
    dialog_marks: AtomicU64,
    /// Buckets it repaired after another worker died holding their stripe.
    repairs: AtomicU64,
    /// The journal of the update in progress: `op << 56 | aor`, 0 when none. Written after
    /// `before` and `pending_cseq`, before the table changes; cleared after the log is.
    pending: AtomicU64,
    /// The table counters (`registers`, `refreshes`, `expiries`, `live`, `cseq_sum`,
    /// `expired_cseq`) as they were before the pending update: a worker killed in the middle
    /// of counting it leaves the first few of the update's counters (in the order it counts
    /// them) at this value plus the update's share, and the rest at this value.
    before: [AtomicU64; 6],
    /// The cseq of the binding the pending update found (0: none, an insert).
    pending_cseq: AtomicU64,
    /// Set while it holds a stripe (for `--kill-one`).
    holding: AtomicU32,
    /// The stripe it holds while `holding`.
    stripe: AtomicU32,
}

#[shared_locked]
struct Registrar {
    stripes: GenLockSet<16>,
    #[striped_by(stripes)]
    buckets: [Bucket; 1024],
    /// `--one-lock`: taken around every bucket operation, for the comparison.
    #[standalone]
    global: GenLock,
    /// Marks made under dialog group locks, per stripe: a plain load and store (not an atomic
    /// add), so a dialog whose group did not really hold its bucket's stripe would lose
    /// marks to another process's dialog on the same stripe. A cache line each.
    stripe_marks: [Counter; 16],
    logs: [WorkerLog; 16],
    /// Read by every worker on every operation, written twice: a line of its own.
    control: Control,
}

#[derive(ShmSafe)]
#[repr(C, align(128))]
struct Control {
    start: AtomicU32,
    stop: AtomicU32,
    /// 1 + the worker to stop mid-update and kill; 0 for none.
    doomed: AtomicU32,
    /// Where in an update it stops ([`KillAt`] as a number).
    kill_at: AtomicU32,
    /// `--one-lock`: every bucket operation also takes the global lock.
    one_lock: AtomicU32,
}

/// A counter on a cache line of its own.
#[derive(ShmSafe)]
#[repr(C, align(128))]
struct Counter(AtomicU64);

impl std::ops::Deref for Counter {
    type Target = AtomicU64;
    fn deref(&self) -> &AtomicU64 {
        &self.0
    }
}

const REGISTER: u64 = 1;
const EXPIRE: u64 = 2;

/// Set by the first Ctrl-C (SIGINT) or SIGTERM: the run stops early, still verified, and
/// the region goes away. A second one ends the parent at once (the workers die with it).
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, Relaxed);
}

fn interrupted() -> bool {
    INTERRUPTED.load(Relaxed)
}

/// Routes SIGINT and SIGTERM to [`INTERRUPTED`], once each.
fn catch_interrupts() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction is valid; the handler only stores to an atomic
        // (async-signal-safe); SA_RESETHAND restores the default action after one delivery.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = on_interrupt as extern "C" fn(libc::c_int) as libc::sighandler_t;
            act.sa_flags = libc::SA_RESETHAND;
            libc::sigemptyset(&mut act.sa_mask);
            libc::sigaction(sig, &act, std::ptr::null_mut());
        }
    }
}

/// The points in an update where `--kill-one` stops worker 0, holding the stripe, to be
/// killed: every step at which the table, the bucket's count and the log disagree.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum KillAt {
    /// An insert journaled, the table not yet touched.
    Journaled = 1,
    /// An insert with the bucket's count bumped, the binding not written.
    Counted,
    /// An insert written to the table, none of it in the log.
    Written,
    /// An insert written and two of its three log counters updated.
    HalfLogged,
    /// A refresh with the cseq bumped and the expiry not.
    HalfRefreshed,
    /// An expiry with the binding cleared and the bucket's count not lowered.
    Cleared,
}

impl KillAt {
    const ALL: [KillAt; 6] = [
        KillAt::Journaled,
        KillAt::Counted,
        KillAt::Written,
        KillAt::HalfLogged,
        KillAt::HalfRefreshed,
        KillAt::Cleared,
    ];

    fn name(self) -> &'static str {
        match self {
            KillAt::Journaled => "journaled",
            KillAt::Counted => "counted",
            KillAt::Written => "written",
            KillAt::HalfLogged => "half-logged",
            KillAt::HalfRefreshed => "half-refreshed",
            KillAt::Cleared => "cleared",
        }
    }

    fn what(self) -> &'static str {
        match self {
            KillAt::Journaled => "an insert journaled, the table not yet touched",
            KillAt::Counted => "an insert with the bucket's count bumped, the binding not written",
            KillAt::Written => "an insert written to the table, none of it in its log",
            KillAt::HalfLogged => "an insert written, two of its three log counters updated",
            KillAt::HalfRefreshed => "a refresh with the cseq bumped and the expiry not",
            KillAt::Cleared => "an expiry with the binding cleared, the bucket's count not lowered",
        }
    }

    /// What the journal must show after a kill here: whether the update reached the table,
    /// and how many of its log counters were counted.
    fn expected(self) -> (bool, usize) {
        match self {
            KillAt::Journaled | KillAt::Counted => (false, 0),
            KillAt::Written | KillAt::HalfRefreshed | KillAt::Cleared => (true, 0),
            KillAt::HalfLogged => (true, 2),
        }
    }

    fn from_number(n: u32) -> Option<KillAt> {
        KillAt::ALL.into_iter().find(|k| *k as u32 == n)
    }
}

/// What each kind of update adds to the table counters (`registers`, `refreshes`,
/// `expiries`, `live`, `cseq_sum`, `expired_cseq`), and the order in which it counts them:
/// a worker killed in the middle has counted a prefix of that order.
fn share_of(op: u64, found_cseq: u64) -> ([i64; 6], &'static [usize]) {
    let c = found_cseq as i64;
    match (op, found_cseq) {
        (REGISTER, 0) => ([1, 0, 0, 1, 1, 0], &[0, 3, 4]),
        (REGISTER, _) => ([0, 1, 0, 0, 1, 0], &[1, 4]),
        _ => ([0, 0, 1, -1, -c, c], &[2, 3, 4, 5]),
    }
}

impl WorkerLog {
    fn table_counters(&self) -> [&AtomicU64; 6] {
        [
            &self.registers,
            &self.refreshes,
            &self.expiries,
            &self.live,
            &self.cseq_sum,
            &self.expired_cseq,
        ]
    }

    /// Journals an update before the table changes: the counters as they are, the cseq it
    /// found, then (last, with Release: nothing before it may move after) the update.
    fn begin(&self, op: u64, aor: u64, found_cseq: u32) {
        for (b, c) in self.before.iter().zip(self.table_counters()) {
            b.store(c.load(Relaxed), Relaxed);
        }
        self.pending_cseq.store(u64::from(found_cseq), Relaxed);
        self.pending.store(op << 56 | aor, Release);
        // The table writes that follow stay after the journal.
        std::sync::atomic::fence(SeqCst);
    }

    /// Ends the journaled update, after its table writes and its counters.
    fn end(&self) {
        self.pending.store(0, Release);
    }
}

/// A table write done: the log counters that follow stay after it (a kill between the two
/// must find the write, as the journal says).
fn written() {
    std::sync::atomic::fence(SeqCst);
}

fn bucket_of(aor: u64) -> usize {
    (aor.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) as usize % BUCKETS
}

/// The registrar's table, shared by the threads of a worker.
type Table = Arc<ShmBox<Registrar>>;

/// A dialog: a member of its own group lock.
#[grp_member(on_destroy = ended)]
struct Dialog {
    #[grp]
    group: WeakGrpLock,
    table: Table,
    worker: usize,
    requests: u32,
}

impl Dialog {
    fn ended(&mut self) {
        self.table.logs[self.worker]
            .dialogs_destroyed
            .fetch_add(1, Relaxed);
    }
}

/// A dialog's transaction, handled by the timer thread.
#[grp_member]
struct Transaction {
    #[grp]
    group: WeakGrpLock,
    retransmits: u32,
}

struct Args {
    workers: usize,
    seconds: f64,
    kill_one: bool,
    /// Where `--kill-one` stops worker 0 (`--kill-at`; by default one chosen at random).
    kill_at: Option<KillAt>,
    one_lock: bool,
    compare: bool,
    /// `--compare`: pairs of runs, alternating which goes first.
    rounds: usize,
    name: String,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        workers: 4,
        seconds: 5.0,
        kill_one: false,
        kill_at: None,
        one_lock: false,
        compare: false,
        rounds: 3,
        name: NAME.into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |what: &str| it.next().ok_or(format!("{flag} needs {what}"));
        match flag.as_str() {
            "--workers" => {
                a.workers = value("a number")?
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_WORKERS).contains(n))
                    .ok_or(format!("--workers takes 1 to {MAX_WORKERS}"))?
            }
            "--seconds" => {
                a.seconds = value("a number")?
                    .parse()
                    .ok()
                    .filter(|s: &f64| *s > 0.0 && s.is_finite())
                    .ok_or("--seconds takes a positive number")?
            }
            "--kill-one" => a.kill_one = true,
            "--kill-at" => {
                let v = value("a step")?;
                a.kill_one = true;
                a.kill_at = Some(KillAt::ALL.into_iter().find(|k| k.name() == v).ok_or_else(
                    || {
                        let names: Vec<_> = KillAt::ALL.iter().map(|k| k.name()).collect();
                        format!("--kill-at takes one of {}", names.join(", "))
                    },
                )?);
            }
            "--one-lock" => a.one_lock = true,
            "--compare" => a.compare = true,
            "--rounds" => {
                a.rounds = value("a number")?
                    .parse()
                    .ok()
                    .filter(|n| (1..=100).contains(n))
                    .ok_or("--rounds takes 1 to 100")?
            }
            "--name" => a.name = value("a region name")?,
            "-h" | "--help" => {
                return Err("usage: registrar [--workers N] [--seconds S] \
                            [--kill-one | --kill-at STEP] [--one-lock] [--compare [--rounds N]] \
                            [--name /NAME]"
                    .into())
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    if a.compare && (a.kill_one || a.one_lock) {
        return Err("--compare runs its own two runs: without --kill-one or --one-lock".into());
    }
    if a.kill_one && a.workers < 2 {
        return Err("--kill-one needs at least 2 workers (one to kill, one to go on)".into());
    }
    Ok(a)
}

/// Takes bucket `b`'s stripe; if a holder died holding it, repairs the stripe's buckets
/// first (their counts may be off by the update it was making) and marks it consistent.
fn bucket<'t>(reg: &'t Registrar, b: usize, log: &WorkerLog) -> Locked<'t> {
    // `--one-lock`: the global lock first, at the same point the stripe would be taken.
    let global = (reg.control.one_lock.load(Relaxed) != 0).then(|| {
        let mut g = reg.global.lock();
        // It guards no data of its own: a dead holder's buckets are repaired through their
        // stripe, below.
        lockkit::GenLockGuard::mark_consistent(&mut g);
        g
    });
    Locked {
        stripe: stripe(reg, b, log),
        _global: global,
    }
}

/// A bucket under its stripe (and, with `--one-lock`, the global lock).
struct Locked<'t> {
    stripe: StripeGuard<'t, Bucket>,
    _global: Option<lockkit::GenLockGuard<'t>>,
}

impl std::ops::Deref for Locked<'_> {
    type Target = Bucket;
    fn deref(&self) -> &Bucket {
        &self.stripe
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Bucket {
        &mut self.stripe
    }
}

fn stripe<'t>(reg: &'t Registrar, b: usize, log: &WorkerLog) -> StripeGuard<'t, Bucket> {
    let mut g = reg.lock_buckets(b);
    if StripeGuard::owner_died(&g) {
        // Every bucket of the stripe, under the one hold just taken (the guard lends them
        // all), so no other worker sees the stripe half repaired.
        for (_, o) in g.iter_mut() {
            o.used = o.slots.iter().filter(|s| s.aor != 0).count() as u32;
            // A refresh cut between its cseq and its expiry: rolled forward.
            for s in o.slots.iter_mut().filter(|s| s.aor != 0) {
                s.expires = 3600 * u64::from(s.cseq);
            }
        }
        StripeGuard::mark_consistent(&mut g);
        log.repairs.fetch_add(1, Relaxed);
    }
    g
}

/// `--kill-one`: stops here, holding the stripe, until the parent's SIGKILL lands.
fn stall_for_the_kill(log: &WorkerLog, w: usize) -> ! {
    log.holding.store(2, Release);
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        std::hint::spin_loop();
    }
    eprintln!("registrar: worker {w} was to be killed and was not");
    // SAFETY: leave at once, as the kill would have.
    unsafe { libc::_exit(3) };
}

/// One REGISTER: refresh the binding of `aor`, or insert it. `kill`: where to stop for
/// `--kill-one`, if this update is the one.
fn register(reg: &Registrar, w: usize, aor: u64, kill: Option<KillAt>) {
    let log = &reg.logs[w];
    let b = bucket_of(aor);
    let contact = contact_for(aor);
    let mut g = bucket(reg, b, log);
    log.stripe.store((b % STRIPES) as u32, Relaxed);
    log.holding.store(1, Release);
    let stop = |at: KillAt| {
        if kill == Some(at) {
            stall_for_the_kill(log, w);
        }
    };
    if let Some(s) = g.slots.iter_mut().find(|s| s.aor == aor) {
        log.begin(REGISTER, aor, s.cseq);
        // The cseq first, then the expiry: a holder killed between the two leaves a binding
        // the next holder rolls forward (expires = 3600 x cseq).
        s.cseq += 1;
        written();
        stop(KillAt::HalfRefreshed);
        s.expires += 3600;
        written();
        log.refreshes.fetch_add(1, Relaxed);
        log.cseq_sum.fetch_add(1, Relaxed);
        log.end();
    } else if (g.used as usize) < SLOTS {
        log.begin(REGISTER, aor, 0);
        stop(KillAt::Journaled);
        g.used += 1;
        written();
        stop(KillAt::Counted);
        let slot = g
            .slots
            .iter_mut()
            .find(|s| s.aor == 0)
            .expect("used < SLOTS");
        // Every field but the key, then the key: a slot is in use once its aor is set, and
        // by then it is whole.
        *slot = Binding {
            aor: 0,
            expires: 3600,
            cseq: 1,
            owner: w as u32,
            contact,
        };
        written();
        slot.aor = aor;
        written();
        stop(KillAt::Written);
        log.registers.fetch_add(1, Relaxed);
        log.live.fetch_add(1, Relaxed);
        stop(KillAt::HalfLogged);
        log.cseq_sum.fetch_add(1, Relaxed);
        log.end();
    } else {
        log.full.fetch_add(1, Relaxed);
    }
    log.holding.store(0, Release);
}

fn lookup(reg: &Registrar, w: usize, aor: u64) {
    let log = &reg.logs[w];
    let g = bucket(reg, bucket_of(aor), log);
    if let Some(s) = g.slots.iter().find(|s| s.aor == aor) {
        // What a lookup answers with: the contact, copied out under the stripe.
        let contact = s.contact;
        drop(g);
        std::hint::black_box(contact);
        log.hits.fetch_add(1, Relaxed);
    }
    log.lookups.fetch_add(1, Relaxed);
}

fn expire(reg: &Registrar, w: usize, aor: u64, kill: Option<KillAt>) {
    let log = &reg.logs[w];
    let b = bucket_of(aor);
    let mut g = bucket(reg, b, log);
    log.stripe.store((b % STRIPES) as u32, Relaxed);
    log.holding.store(1, Release);
    if let Some(s) = g.slots.iter_mut().find(|s| s.aor == aor) {
        let cseq = s.cseq;
        log.begin(EXPIRE, aor, cseq);
        // The key first, then the rest of the slot: a free slot may hold stale fields, a
        // slot in use never half of them; and a half-written insert later must not revive
        // this binding's old fields.
        s.aor = 0;
        written();
        *s = Binding::FREE;
        written();
        if kill == Some(KillAt::Cleared) {
            stall_for_the_kill(log, w);
        }
        g.used -= 1;
        written();
        log.expiries.fetch_add(1, Relaxed);
        log.live.fetch_sub(1, Relaxed);
        log.cseq_sum.fetch_sub(u64::from(cseq), Relaxed);
        log.expired_cseq.fetch_add(u64::from(cseq), Relaxed);
        log.end();
    }
    log.holding.store(0, Release);
}

/// One mark on `stripe`'s counter, by a thread whose dialog group holds that stripe.
fn mark(reg: &Registrar, stripe: usize) {
    let c = &reg.stripe_marks[stripe];
    c.store(c.load(Relaxed) + 1, Relaxed);
}

/// A worker process: a request thread and a timer thread sharing dialogs.
fn worker(table: Table, w: usize) -> i32 {
    let reg: &Registrar = &table;
    let log = &reg.logs[w];
    log.pid.store(std::process::id(), Relaxed);
    log.state.store(1, Release);
    while reg.control.start.load(Acquire) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let (to_timer, timer_rx) =
        mpsc::channel::<(GrpLock, lockkit::grp::Member<Transaction>, usize)>();
    let timer = {
        let table = Arc::clone(&table);
        std::thread::spawn(move || {
            // The timer: retransmits each transaction once, under its dialog's group lock
            // (which also holds the dialog's bucket stripe), then lets go of the dialog.
            for (dialog, tsx, stripe) in timer_rx {
                locked!(t = tsx => {
                    t.retransmits += 1;
                    mark(&table, stripe);
                    table.logs[w].dialog_marks.fetch_add(1, Relaxed);
                });
                drop(tsx);
                drop(dialog); // the last reference (if the request thread is done) destroys it
            }
        })
    };
    let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ ((w as u64 + 1) << 17);
    let mut ops = 0u64;
    let doomed = reg.control.doomed.load(Relaxed) == w as u32 + 1;
    let kill_at = KillAt::from_number(reg.control.kill_at.load(Relaxed));
    let one_lock = reg.control.one_lock.load(Relaxed) != 0;
    let kill_after = 2_000;
    while reg.control.stop.load(Relaxed) == 0 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let aor = 1 + w as u64 * AORS + rng % AORS;
        match (rng >> 32) % 100 {
            0..=44 => register(reg, w, aor, kill_at.filter(|_| doomed && ops >= kill_after)),
            45..=84 => lookup(reg, w, aor),
            85..=96 => expire(reg, w, aor, kill_at.filter(|_| doomed && ops >= kill_after)),
            _ => {
                // A dialog for this AOR: its group chains the bucket's stripe (before the
                // group's own lock), so whoever takes the dialog takes the stripe first.
                // With --one-lock, the global lock stands for every stripe, here too.
                let dialog = GrpLock::new();
                let stripe = bucket_of(aor) % STRIPES;
                let lock = if one_lock {
                    FieldLock::new(Arc::clone(&table), |t| &t.global)
                } else {
                    FieldLock::new(Arc::clone(&table), |t| t.stripes.at(stripe))
                };
                dialog
                    .chain_lock(Arc::new(lock), -1)
                    .expect("a new group can chain a lock");
                let d = Dialog {
                    group: WeakGrpLock::new(),
                    table: Arc::clone(&table),
                    worker: w,
                    requests: 0,
                }
                .join(&dialog);
                let tsx = Transaction {
                    group: WeakGrpLock::new(),
                    retransmits: 0,
                }
                .join(&dialog);
                log.dialogs_made.fetch_add(1, Relaxed);
                locked!(d = d => {
                    d.requests += 1;
                    mark(reg, stripe);
                    log.dialog_marks.fetch_add(1, Relaxed);
                });
                drop(d);
                if to_timer.send((dialog, tsx, stripe)).is_err() {
                    break;
                }
            }
        }
        ops += 1;
        log.ops.store(ops, Relaxed);
    }
    drop(to_timer);
    timer.join().expect("the timer thread");
    log.state.store(2, Release);
    0
}

/// The lock the parent saw held the longest, from reports taken every 100 ms.
#[derive(Default)]
struct Longest {
    since: std::collections::HashMap<(u64, u32), Instant>,
    best: Option<(String, u32, Duration)>,
}

impl Longest {
    fn sample(&mut self, region: &ShmRegion) {
        let report = region.report();
        let now = Instant::now();
        let held: Vec<_> = report
            .locks
            .iter()
            .filter_map(|l| l.holder.map(|h| ((l.offset, h.tid), l.place(), h.pid)))
            .collect();
        self.since.retain(|k, _| held.iter().any(|(h, ..)| h == k));
        for (key, place, pid) in held {
            let t = *self.since.entry(key).or_insert(now);
            let d = now - t;
            if self.best.as_ref().is_none_or(|b| d > b.2) {
                self.best = Some((place, pid, d));
            }
        }
    }
}

struct RunResult {
    ops: u64,
    elapsed: f64,
    ok: bool,
    /// The `verified: ..` line.
    line: String,
}

fn run(a: &Args, one_lock: bool, kill_one: bool, quiet: bool) -> Result<RunResult, String> {
    let _ = ShmRegion::unlink(&a.name);
    // Sized for what goes in it: the table, published under one name.
    let size = lockkit::RegionSize::new()
        .object::<Registrar>()
        .roots(1)
        .bytes()
        .map_err(|e| e.to_string())?;
    let region = ShmRegion::create(&a.name, size).map_err(|e| format!("{}: {e}", a.name))?;
    let table: Table = Arc::new(
        region
            .alloc_zeroed::<Registrar>()
            .map_err(|e| e.to_string())?,
    );
    region
        .publish("registrar", &table)
        .map_err(|e| e.to_string())?;
    // Where the doomed worker stops: as asked, or a step chosen at random (each run tries
    // another way of dying mid-update).
    let kill_at = a.kill_at.unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        KillAt::ALL[nanos as usize % KillAt::ALL.len()]
    });
    if kill_one {
        table.control.doomed.store(1, Relaxed);
        table.control.kill_at.store(kill_at as u32, Relaxed);
    }
    table.control.one_lock.store(u32::from(one_lock), Relaxed);
    if !quiet {
        println!(
            "registrar: region {} ({} buckets over {} stripes), {} workers, {} s{}{}",
            a.name,
            BUCKETS,
            STRIPES,
            a.workers,
            a.seconds,
            if one_lock { ", one global lock" } else { "" },
            if kill_one {
                format!(
                    ", killing worker 0 mid-update (--kill-at {})",
                    kill_at.name()
                )
            } else {
                String::new()
            }
        );
    }
    // A worker must not outlive the parent (killed, or ended by a closed pipe): it would
    // run on, unstopped, holding the region; `Workers` has each die with it. Ctrl-C reaches
    // the whole process group: the workers leave it to the parent, which stops them through
    // the table, so none dies holding a stripe. Dropping `workers` on an early return kills
    // and reaps whoever is left.
    let mut workers = Workers::new();
    workers.interrupts_to_parent(true);
    for w in 0..a.workers {
        let t = Arc::clone(&table);
        workers
            .spawn(move || worker(t, w))
            .map_err(|e| format!("forking worker {w}: {e}"))?;
    }
    let t0 = Instant::now();
    while (0..a.workers).any(|w| table.logs[w].state.load(Acquire) == 0) {
        if t0.elapsed() > Duration::from_secs(30) {
            return Err("workers did not start within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let t0 = Instant::now();
    table.control.start.store(1, Release);
    let total = || {
        (0..a.workers)
            .map(|w| table.logs[w].ops.load(Relaxed))
            .sum::<u64>()
    };
    let mut killed: Option<(usize, u32, String)> = None;
    let mut longest = Longest::default();
    let mut last = (Instant::now(), 0u64);
    let run_for = Duration::from_secs_f64(a.seconds);
    while t0.elapsed() < run_for && !interrupted() {
        // Poll often until the doomed worker is killed, then every 100 ms.
        let waiting_to_kill = kill_one && killed.is_none();
        std::thread::sleep(Duration::from_millis(if waiting_to_kill { 1 } else { 100 }));
        if !waiting_to_kill || last.0.elapsed() >= Duration::from_secs(1) {
            longest.sample(&region);
        }
        if kill_one && killed.is_none() && table.logs[0].holding.load(Acquire) == 2 {
            let stripe = table.logs[0].stripe.load(Relaxed);
            workers
                .kill(0, libc::SIGKILL)
                .map_err(|e| format!("killing worker 0: {e}"))?;
            let status = workers
                .wait(0, Duration::from_secs(10))
                .map_err(|e| format!("waiting for worker 0: {e}"))?;
            // What it held by the region's report (unless the next worker took it already).
            let held: Vec<String> = workers
                .held_by(0, &region)
                .iter()
                .map(|l| l.place())
                .collect();
            killed = Some((0, stripe, format!("{status:?}")));
            if !quiet {
                println!(
                    "  killed worker 0 (pid {}) with SIGKILL while it held stripe {stripe}: {}",
                    workers.pid(0),
                    kill_at.what()
                );
                println!(
                    "  {}; the region's report names what it held: {}",
                    status.map_or("not reaped".into(), |s| s.to_string()),
                    if held.is_empty() {
                        "nothing, taken over already by the next worker".into()
                    } else {
                        held.join(", ")
                    }
                );
            }
        }
        if !quiet && last.0.elapsed() >= Duration::from_secs(1) {
            let n = total();
            let rate = (n - last.1) as f64 / last.0.elapsed().as_secs_f64();
            let held = longest
                .best
                .as_ref()
                .map_or("none seen".into(), |(p, pid, d)| {
                    if d.is_zero() {
                        format!("{p} by pid {pid} (held at one report, none held across two)")
                    } else {
                        format!(
                            "{p} by pid {pid}, held across reports {:.0} ms apart",
                            d.as_secs_f64() * 1e3
                        )
                    }
                });
            println!(
                "  {:>4.1} s: {n:>10} ops, {:>6.2} Mops/s; held longest: {held}",
                t0.elapsed().as_secs_f64(),
                rate / 1e6
            );
            last = (Instant::now(), n);
        }
    }
    table.control.stop.store(1, Release);
    let elapsed = t0.elapsed().as_secs_f64();
    if interrupted() && !quiet {
        println!("  interrupted after {elapsed:.1} s: stopping the workers and checking the table");
    }
    for w in 0..a.workers {
        if killed.as_ref().is_some_and(|k| k.0 == w) {
            continue;
        }
        let pid = workers.pid(w);
        match workers.wait(w, Duration::from_secs(30)) {
            Ok(Some(s)) if s.success() => {}
            Ok(Some(s)) => return Err(format!("worker {w} (pid {pid}) ended: {s}")),
            Ok(None) => {
                // Stuck: dropping `workers` on this return kills it, so nothing is left.
                return Err(format!("worker {w} (pid {pid}) did not finish within 30 s"));
            }
            Err(e) => return Err(format!("waiting for worker {w} (pid {pid}): {e}")),
        }
    }
    if kill_one && killed.is_none() {
        return Err("--kill-one: worker 0 never reached the point to be killed at".into());
    }
    let ops = total();
    let ok = verify(
        &table,
        a.workers,
        killed.as_ref().map(|k| (k.0, k.1, kill_at)),
        quiet,
    );
    let line = if ok {
        format!(
            "verified: {} workers, {ops} operations, {} bindings, {} dialogs{}: OK",
            a.workers,
            (0..a.workers)
                .map(|w| table.logs[w].live.load(Relaxed))
                .sum::<u64>(),
            (0..a.workers)
                .map(|w| table.logs[w].dialogs_made.load(Relaxed))
                .sum::<u64>(),
            if killed.is_some() {
                ", one worker killed"
            } else {
                ""
            }
        )
    } else {
        "verified: FAILED".to_string()
    };
    // The name goes with the last handle, and only if it still names this region (another
    // run may have replaced it meanwhile).
    drop((table, region));
    Ok(RunResult {
        ops,
        elapsed,
        ok,
        line,
    })
}

/// Checks the table against the logs; prints the summary and every discrepancy.
/// A dead worker's table counters as they stand once its journaled update is settled:
/// counted in full if the table shows it landed, not at all if not. `None` (with the reason)
/// when a counter is neither at its journaled value nor at that plus the update's share.
struct Settled {
    counters: [u64; 6],
    /// What the pending update was, and whether it landed; `None` when nothing was pending.
    pending: Option<(&'static str, u64, bool)>,
    /// Of the pending update's counters, how many its log had already counted.
    counted: usize,
    of: usize,
}

fn settle(l: &WorkerLog, table_cseq: impl Fn(u64) -> Option<u32>) -> Result<Settled, String> {
    let now: Vec<u64> = l.table_counters().iter().map(|c| c.load(Relaxed)).collect();
    let pending = l.pending.load(Relaxed);
    let mut settled = Settled {
        counters: std::array::from_fn(|i| now[i]),
        pending: None,
        counted: 0,
        of: 0,
    };
    if pending == 0 {
        return Ok(settled);
    }
    let (op, aor) = (pending >> 56, pending & ((1 << 56) - 1));
    let found = l.pending_cseq.load(Relaxed);
    let (share, order) = share_of(op, found);
    let (what, landed) = match (op, found) {
        (REGISTER, 0) => ("an insert", table_cseq(aor).is_some()),
        (REGISTER, c) => ("a refresh", table_cseq(aor).map(u64::from) == Some(c + 1)),
        (EXPIRE, _) => ("an expiry", table_cseq(aor).is_none()),
        _ => {
            return Err(format!(
                "its journal holds an unknown update ({pending:#x})"
            ))
        }
    };
    let before: Vec<u64> = l.before.iter().map(|b| b.load(Relaxed)).collect();
    let after = |i: usize| before[i].wrapping_add_signed(share[i]);
    // Counted: a prefix of the update's counters, in the order the worker counts them, and
    // nothing else moved.
    settled.of = order.len();
    settled.counted = order
        .iter()
        .take_while(|&&i| share[i] != 0 && now[i] == after(i))
        .count();
    for i in 0..6 {
        let counted = order[..settled.counted].contains(&i);
        let expected = if counted { after(i) } else { before[i] };
        if now[i] != expected {
            return Err(format!(
                "counter {i} of its log is {}, but {what} it had pending, counted up to its \
                 {} first counters, leaves it at {expected}",
                now[i], settled.counted
            ));
        }
        settled.counters[i] = if landed { after(i) } else { before[i] };
    }
    if !landed && settled.counted > 0 {
        return Err(format!(
            "its log counted {what} of aor {aor} that the table does not show"
        ));
    }
    settled.pending = Some((what, aor, landed));
    Ok(settled)
}

fn verify(
    reg: &Registrar,
    workers: usize,
    killed: Option<(usize, u32, KillAt)>,
    quiet: bool,
) -> bool {
    let mut ok = true;
    let mut fail = |msg: String| {
        println!("  MISMATCH: {msg}");
        ok = false;
    };
    // Every lock recovered: no stripe (nor the global lock) still marked as left by a dead
    // holder.
    for i in 0..STRIPES {
        if reg.stripes.at(i).is_inconsistent() {
            fail(format!(
                "stripe {i} is still marked inconsistent: nobody repaired it"
            ));
        }
    }
    if reg.global.is_inconsistent() {
        fail("the global lock is still marked inconsistent".into());
    }
    // Every bucket: its count matches its slots; each binding is its owner's own AOR, in
    // its bucket, once, with its contact, and refreshed as often as its cseq says.
    let mut live = [0u64; MAX_WORKERS];
    let mut cseq = [0u64; MAX_WORKERS];
    let mut seen = std::collections::HashMap::new();
    for b in 0..BUCKETS {
        let g = reg.lock_buckets(b);
        let used = g.slots.iter().filter(|s| s.aor != 0).count() as u32;
        if used != g.used {
            fail(format!(
                "bucket {b}: count {} but {used} slots in use",
                g.used
            ));
        }
        for s in g.slots.iter().filter(|s| s.aor != 0) {
            let w = s.owner as usize;
            if w >= workers || (s.aor - 1) / AORS != w as u64 || bucket_of(s.aor) != b {
                fail(format!(
                    "bucket {b}: binding of aor {} by worker {w}",
                    s.aor
                ));
                continue;
            }
            if seen.insert(s.aor, s.cseq).is_some() {
                fail(format!("aor {} is bound twice", s.aor));
            }
            if s.contact != contact_for(s.aor) {
                fail(format!("bucket {b}: aor {} carries another contact", s.aor));
            }
            if s.cseq == 0 || s.expires != 3600 * u64::from(s.cseq) {
                fail(format!(
                    "aor {}: cseq {} but expires {} (each REGISTER adds 3600)",
                    s.aor, s.cseq, s.expires
                ));
            }
            live[w] += 1;
            cseq[w] += u64::from(s.cseq);
        }
    }
    if !quiet {
        println!(
            "\n| worker | status | ops | registers | refreshes | expiries | lookups (hits) \
             | bindings | dialogs | repairs |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|");
    }
    let mut marks_logged = 0;
    let mut dead_settled = None;
    for w in 0..workers {
        let l = &reg.logs[w];
        let get = |a: &AtomicU64| a.load(Relaxed);
        let dead = killed.is_some_and(|k| k.0 == w);
        marks_logged += get(&l.dialog_marks);
        // A worker that finished has no update pending; the dead one's is settled from its
        // journal against the table.
        if !dead && get(&l.pending) != 0 {
            fail(format!("worker {w} finished with an update pending"));
        }
        let settled = match settle(l, |aor| seen.get(&aor).copied()) {
            Ok(s) => s,
            Err(e) => {
                fail(format!("worker {w}: {e}"));
                continue;
            }
        };
        let [registers, refreshes, expiries, live_logged, cseq_logged, expired_cseq] =
            settled.counters;
        // The log against the table, and the log against itself.
        if live_logged != live[w] {
            fail(format!(
                "worker {w}: log says {live_logged} bindings, the table holds {}",
                live[w]
            ));
        }
        if registers - expiries != live_logged {
            fail(format!(
                "worker {w}: {registers} inserted and {expiries} expired, but {live_logged} \
                 live by its log"
            ));
        }
        if cseq_logged != cseq[w] {
            fail(format!(
                "worker {w}: log says cseq sum {cseq_logged}, the table {}",
                cseq[w]
            ));
        }
        // Every REGISTER added 1 to some binding's cseq; expiries took theirs away.
        if cseq_logged + expired_cseq != registers + refreshes {
            fail(format!(
                "worker {w}: cseq sum {cseq_logged} + {expired_cseq} expired is not its \
                 {registers} inserts + {refreshes} refreshes"
            ));
        }
        if dead {
            dead_settled = Some(settled);
        }
        if !dead && get(&l.dialogs_made) != get(&l.dialogs_destroyed) {
            fail(format!(
                "worker {w}: {} dialogs made, {} destroyed by their groups",
                get(&l.dialogs_made),
                get(&l.dialogs_destroyed)
            ));
        }
        if !quiet {
            println!(
                "| {w} | {} | {} | {} | {} | {} | {} ({}) | {} | {}/{} | {} |",
                if dead { "killed" } else { "finished" },
                get(&l.ops),
                registers,
                refreshes,
                expiries,
                get(&l.lookups),
                get(&l.hits),
                live[w],
                get(&l.dialogs_destroyed),
                get(&l.dialogs_made),
                get(&l.repairs),
            );
        }
    }
    // Marks made under the dialogs' group locks: lost ones mean a group did not hold its
    // stripe. A killed worker's two threads may each have marked the table and not yet
    // their log.
    let marked: u64 = reg.stripe_marks.iter().map(|c| c.load(Relaxed)).sum();
    let slack = if killed.is_some() { 2 } else { 0 };
    if marked < marks_logged || marked > marks_logged + slack {
        fail(format!(
            "{marked} marks made under dialog group locks, {marks_logged} logged"
        ));
    }
    if let (Some((w, stripe, at)), Some(settled)) = (killed, dead_settled) {
        let l = &reg.logs[w];
        let repairs: u64 = (0..workers)
            .map(|v| reg.logs[v].repairs.load(Relaxed))
            .sum();
        let journal = match settled.pending {
            Some((what, aor, true)) => format!(
                "its journal holds {what} of aor {aor}, which the table shows landed; its \
                 log had counted {} of its {} counters, the rest are counted from the journal",
                settled.counted, settled.of
            ),
            Some((what, aor, false)) => format!(
                "its journal holds {what} of aor {aor}, which the table shows never landed \
                 (its log had counted none of it)"
            ),
            None => "its journal holds no update".into(),
        };
        if !quiet {
            println!(
                "\nworker {w} was killed holding stripe {stripe} in the middle of {}: {journal}. \
                 So it had completed {} inserts, {} refreshes and {} expiries, leaving {} \
                 bindings with a cseq sum of {}; the table holds {} and {} of its bindings: {}. \
                 Stripe repairs by the other workers after being told the owner died: \
                 {repairs}; every stripe is consistent again: {}. Its dialogs: {} made, {} \
                 destroyed before it died.",
                at.what(),
                settled.counters[0],
                settled.counters[1],
                settled.counters[2],
                settled.counters[3],
                settled.counters[4],
                live[w],
                cseq[w],
                if settled.counters[3] == live[w] && settled.counters[4] == cseq[w] {
                    "the same"
                } else {
                    "NOT the same"
                },
                (0..STRIPES).all(|i| !reg.stripes.at(i).is_inconsistent()),
                l.dialogs_made.load(Relaxed),
                l.dialogs_destroyed.load(Relaxed),
            );
        }
        if repairs == 0 {
            fail(format!(
                "nobody repaired stripe {stripe} after worker {w} died"
            ));
        }
        // The data tells what happened; the step it was killed at says what it must tell.
        match settled.pending {
            None => fail(format!("worker {w} died with no update in its journal")),
            Some((_, _, landed)) if (landed, settled.counted) != at.expected() => fail(format!(
                "worker {w} was killed at {} ({}), but the table and its log show the update \
                 {} with {} of its counters counted",
                at.name(),
                at.what(),
                if landed { "landed" } else { "not landed" },
                settled.counted
            )),
            Some(_) => {}
        }
    }
    ok
}

/// `--compare`: `a.rounds` pairs of runs, striped and with one global lock, alternating
/// which goes first (this machine's speed drifts); the ratio is taken inside each pair.
fn compare(a: &Args) -> Result<bool, String> {
    let (mut striped, mut one, mut ratios, mut ok) = (vec![], vec![], vec![], true);
    for round in 0..a.rounds {
        let mut pair = [0.0f64; 2];
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for one_lock in order {
            let r = run(a, one_lock, false, true)?;
            ok &= r.ok;
            if !r.ok {
                println!(
                    "  {}: {}",
                    if one_lock { "one lock" } else { "striped" },
                    r.line
                );
            }
            pair[usize::from(one_lock)] = r.ops as f64 / r.elapsed / 1e6;
            if interrupted() {
                return Err("interrupted".into());
            }
        }
        println!(
            "  round {}: striped {:.2} Mops/s, one global lock {:.2} Mops/s: {:.2}x",
            round + 1,
            pair[0],
            pair[1],
            pair[0] / pair[1]
        );
        striped.push(pair[0]);
        one.push(pair[1]);
        ratios.push(pair[0] / pair[1]);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (lo, hi) = (
        ratios.iter().copied().fold(f64::INFINITY, f64::min),
        ratios.iter().copied().fold(0.0, f64::max),
    );
    println!(
        "striped over {STRIPES} locks: {:.2} Mops/s; one global lock: {:.2} Mops/s; ratio {:.2}x \
         (rounds {lo:.2}-{hi:.2}; medians of {} rounds, {} workers, {} s per run)",
        median(striped),
        median(one),
        median(ratios),
        a.rounds,
        a.workers,
        a.seconds
    );
    if ok {
        println!("verified: all {} runs OK", 2 * a.rounds);
    }
    Ok(ok)
}

fn main() {
    // Output piped into `head` and closed: end quietly, as a C tool does, instead of
    // panicking on the failed write.
    // SAFETY: restoring the default action of SIGPIPE, before any thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("registrar: {e}");
            std::process::exit(2);
        }
    };
    catch_interrupts();
    let result = if a.compare {
        compare(&a)
    } else {
        run(&a, a.one_lock, a.kill_one, false).map(|r| {
            println!(
                "throughput: {:.2} Mops/s over {:.1} s",
                r.ops as f64 / r.elapsed / 1e6,
                r.elapsed
            );
            println!("{}", r.line);
            r.ok
        })
    };
    if interrupted() {
        if let Err(e) = &result {
            eprintln!("registrar: {e}");
        }
        // As a shell expects of a program ended by Ctrl-C, after the check was printed.
        std::process::exit(130);
    }
    match result {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("registrar: {e}");
            std::process::exit(1);
        }
    }
}
