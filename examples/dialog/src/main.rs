//! A PJSIP-like dialog and its transactions, with group locks (`cargo run -p dialog`).
//!
//! In PJSIP a dialog (`pjsip_dialog`) and its invite session share one group lock, and each
//! transaction (`pjsip_transaction`) has its own; the dialog's group chains its transactions'
//! locks, so a thread that holds the dialog holds its transactions too, while a
//! transaction's timer takes only the transaction's lock, and tells the dialog of a state
//! change with that lock held. Members are destroyed by their group when its last reference
//! goes, once.
//!
//! Here each of four forked workers (`lockkit::workers`) runs a transport thread and a timer
//! thread. For each of its dialogs the transport thread:
//!
//! - creates the dialog's [`GrpLock`], chains to it (at -1, before the group's own lock) the
//!   stripe of the dialog's record in a shared `#[shared_locked]` table (16 stripes, so
//!   other processes' dialogs share it), and adds two members, the [`Dialog`] and its
//!   [`InvSession`] (`#[grp_member]`);
//! - sends three requests (INVITE, UPDATE, BYE): each is a [`Transaction`], a member of a
//!   group lock of its own, which the dialog's group chains (at +1); the request is sent
//!   under `locked!` over both members of the dialog, and counted in the shared record
//!   through the dialog's group guard (`lend_records`, `lend_marks`: the group holds the
//!   stripe); then the transaction goes to the timer thread.
//!
//! The timer thread retransmits each transaction twice under its own lock, then terminates
//! it: with the transaction's lock held it takes the dialog's (`locked!` inside `locked!`,
//! PJSIP's `tsx_set_state` calling the dialog's `on_tsx_state`), the dialog unchains the
//! transaction's lock and every handle is let go, so the group's last reference runs the
//! destroy handlers: each transaction's, then, after the dialog's last transaction, the
//! dialog's and its session's.
//!
//! The parent checks, for every dialog, the counts in its record, that each destroy handler
//! ran exactly once (they count in shared memory), and that no increment made under a
//! dialog's group on its stripe's counter was lost (a plain load and store, which other
//! processes' dialogs on that stripe would race with if the group did not hold the stripe).
//! Ends with `verified: ... OK` (exit 0) or `FAILED: ...` (exit 1).

use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use lockkit::grp::{ChainLock, FieldLock, GrpLock, Member, WeakGrpLock};
use lockkit::workers::Workers;
use lockkit::{
    grp_member, locked, shared_locked, GenLockSet, RegionSize, ShmBox, ShmRegion, ShmSafe, ShmStr,
};

/// Stripes of the shared call table.
const STRIPES: usize = 16;
/// Records in the shared call table: workers × dialogs at most.
const SLOTS: usize = 1024;
/// The requests of every dialog, one transaction each.
const METHODS: [&str; 3] = ["INVITE", "UPDATE", "BYE"];
/// Retransmissions of every transaction (Timer A firing).
const RETRANSMITS: u32 = 2;
/// How long the parent waits for its workers: only a hang reaches it.
const DEADLINE: Duration = Duration::from_secs(120);

/// A dialog's record in the shared table, written only under the record's stripe (held by
/// the dialog's group, which chains it).
#[derive(ShmSafe, Clone, Copy)]
#[repr(C)]
struct CallRecord {
    call_id: ShmStr<40>,
    requests: u32,
    responses: u32,
    /// The dialog's last CSeq, written when the request is sent.
    cseq: u32,
}

/// What the destroy handlers of one dialog's members recorded: each must run exactly once.
#[derive(ShmSafe, Default)]
#[repr(C)]
struct Ended {
    dialogs: AtomicU32,
    sessions: AtomicU32,
    transactions: AtomicU32,
    /// Retransmissions, summed by the transactions' handlers.
    retransmits: AtomicU32,
    /// Transactions the dialog was told had terminated, added by the dialog's handler.
    terminated: AtomicU32,
    /// The session's final state ([`InvState`] as a number), set by its handler.
    session_state: AtomicU32,
}

/// The table every worker's dialogs keep their records in.
#[shared_locked]
struct Calls {
    stripes: GenLockSet<STRIPES>,
    /// Record `i` under stripe `i % 16`.
    #[striped_by(stripes)]
    records: [CallRecord; SLOTS],
    /// One counter per stripe (element `s` under stripe `s`), bumped with a plain load and
    /// store under the dialog's group: exact only if the group really holds the stripe.
    #[striped_by(stripes)]
    marks: [u64; STRIPES],
    ended: [Ended; SLOTS],
}

type Table = Arc<ShmBox<Calls>>;

/// The dialog (`pjsip_dialog`): a member of its group.
#[grp_member(on_destroy = ended)]
struct Dialog {
    #[grp]
    group: WeakGrpLock,
    calls: Table,
    slot: usize,
    local_cseq: u32,
    /// Transactions that told the dialog they terminated.
    terminated: u32,
}

impl Dialog {
    fn ended(&mut self) {
        let e = &self.calls.ended[self.slot];
        e.terminated.fetch_add(self.terminated, Relaxed);
        e.dialogs.fetch_add(1, Relaxed);
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum InvState {
    Null = 0,
    Calling = 1,
    Confirmed = 2,
    Disconnected = 3,
}

/// The invite session (`pjsip_inv_session`): a second member of the dialog's group.
#[grp_member(on_destroy = ended)]
struct InvSession {
    #[grp]
    group: WeakGrpLock,
    calls: Table,
    slot: usize,
    state: InvState,
}

impl InvSession {
    fn ended(&mut self) {
        let e = &self.calls.ended[self.slot];
        e.session_state.store(self.state as u32, Relaxed);
        e.sessions.fetch_add(1, Relaxed);
    }
}

/// A transaction (`pjsip_transaction`): a member of a group lock of its own.
#[grp_member(on_destroy = ended)]
struct Transaction {
    #[grp]
    group: WeakGrpLock,
    calls: Table,
    slot: usize,
    method: &'static str,
    retransmits: u32,
    terminated: bool,
}

impl Transaction {
    fn ended(&mut self) {
        assert!(
            self.terminated,
            "{} destroyed before it terminated",
            self.method
        );
        let e = &self.calls.ended[self.slot];
        e.retransmits.fetch_add(self.retransmits, Relaxed);
        e.transactions.fetch_add(1, Relaxed);
    }
}

/// A transaction handed to the timer thread, with what it needs to terminate it.
struct Pending {
    tsx: Member<Transaction>,
    /// The transaction's group as the dialog's group chains it (to unchain it).
    chained: Arc<dyn ChainLock>,
    dialog: Arc<Member<Dialog>>,
    slot: usize,
}

/// A worker process: a transport thread that makes dialogs and sends requests, and a timer
/// thread that retransmits and terminates the transactions.
fn worker(calls: Table, first_slot: usize, dialogs: usize) -> i32 {
    let (to_timer, timer_rx) = mpsc::channel::<Pending>();
    let timer = {
        let calls = Arc::clone(&calls);
        std::thread::spawn(move || {
            for p in timer_rx {
                for _ in 0..RETRANSMITS {
                    // Timer A: the transaction's own lock only.
                    locked!(t = p.tsx => { t.retransmits += 1 });
                }
                // The final response: the transaction terminates and tells its dialog with
                // its own lock held (the dialog's group takes the transaction's group, which
                // this thread holds already: the group lock is recursive).
                locked!(t = p.tsx => {
                    t.terminated = true;
                    locked!(d = *p.dialog => { d.terminated += 1 });
                });
                {
                    let g = p.dialog.group().lock();
                    calls.lend_records(&g, p.slot).responses += 1;
                    *calls.lend_marks(&g, p.slot % STRIPES) += 1;
                }
                // The dialog lets go of the transaction; the last reference destroys it.
                assert!(p.dialog.group().unchain_lock(&p.chained));
                drop(p.chained);
                drop(p.tsx); // Transaction::ended runs here
                drop(p.dialog); // after its last transaction: Dialog::ended, InvSession::ended
            }
        })
    };

    for slot in first_slot..first_slot + dialogs {
        // pjsip_dlg_create_uac: the dialog's group lock, chaining the stripe of the dialog's
        // record before its own lock, so whoever holds the dialog holds the record.
        let group = GrpLock::new();
        let stripe = FieldLock::new(Arc::clone(&calls), move |c| c.stripes.at(slot % STRIPES));
        group
            .chain_lock(Arc::new(stripe), -1)
            .expect("a new group chains a lock");
        let dialog = Arc::new(
            Dialog {
                group: WeakGrpLock::new(),
                calls: Arc::clone(&calls),
                slot,
                local_cseq: 0,
                terminated: 0,
            }
            .join(&group),
        );
        let session = InvSession {
            group: WeakGrpLock::new(),
            calls: Arc::clone(&calls),
            slot,
            state: InvState::Null,
        }
        .join(&group);
        {
            let g = group.lock();
            calls.lend_records(&g, slot).call_id =
                ShmStr::truncated(&format!("call-{slot}@lockkit.invalid"));
        }

        for method in METHODS {
            // pjsip_tsx_create_uac: a transaction with a group lock of its own, which the
            // dialog's group chains after its own lock.
            let tsx_group = GrpLock::new();
            let tsx = Transaction {
                group: WeakGrpLock::new(),
                calls: Arc::clone(&calls),
                slot,
                method,
                retransmits: 0,
                terminated: false,
            }
            .join(&tsx_group);
            let chained: Arc<dyn ChainLock> = Arc::new(tsx_group);
            group
                .chain_lock(Arc::clone(&chained), 1)
                .expect("the dialog chains its transaction");

            // Send the request under both members of the dialog.
            let cseq = locked!(d = *dialog, s = session => {
                d.local_cseq += 1;
                s.state = match (method, s.state) {
                    ("INVITE", _) => InvState::Calling,
                    ("BYE", _) => InvState::Disconnected,
                    (_, InvState::Calling) => InvState::Confirmed,
                    (_, state) => state,
                };
                d.local_cseq
            });
            {
                let g = group.lock();
                let mut record = calls.lend_records(&g, slot);
                record.requests += 1;
                record.cseq = cseq;
                *calls.lend_marks(&g, slot % STRIPES) += 1; // same stripe, another field
            }
            let pending = Pending {
                tsx,
                chained,
                dialog: Arc::clone(&dialog),
                slot,
            };
            if to_timer.send(pending).is_err() {
                return 5;
            }
        }
        // The transport is done with the dialog: the timer's references keep it alive until
        // its last transaction terminates.
        drop((session, dialog, group));
    }
    drop(to_timer);
    match timer.join() {
        Ok(()) => 0,
        Err(_) => 6,
    }
}

struct Args {
    workers: usize,
    dialogs: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        workers: 4,
        dialogs: 200,
    };
    let mut it = std::env::args().skip(1);
    let number = |v: Option<String>, what: &str| {
        v.and_then(|v| v.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .ok_or(format!("{what} needs a positive number"))
    };
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--workers" => a.workers = number(it.next(), "--workers")?,
            "--dialogs" => a.dialogs = number(it.next(), "--dialogs")?,
            _ => {
                return Err(format!(
                    "unknown argument {flag}\nusage: dialog [--workers N] [--dialogs PER_WORKER]"
                ))
            }
        }
    }
    if a.workers * a.dialogs > SLOTS {
        return Err(format!(
            "{} workers x {} dialogs is more than the table's {SLOTS} records",
            a.workers, a.dialogs
        ));
    }
    Ok(a)
}

fn main() -> ExitCode {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(&a) {
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

fn run(a: &Args) -> Result<String, String> {
    let size = RegionSize::new()
        .object::<Calls>()
        .bytes()
        .map_err(|e| e.to_string())?;
    let region = ShmRegion::anonymous(size).map_err(|e| e.to_string())?;
    let calls: Table = Arc::new(region.alloc_zeroed::<Calls>().map_err(|e| e.to_string())?);
    println!(
        "dialog: {} workers x {} dialogs, {} transactions each, records striped over {STRIPES} \
         locks",
        a.workers,
        a.dialogs,
        METHODS.len()
    );

    let mut workers = Workers::new();
    for w in 0..a.workers {
        let calls = Arc::clone(&calls);
        let dialogs = a.dialogs;
        workers
            .spawn(move || worker(calls, w * dialogs, dialogs))
            .map_err(|e| e.to_string())?;
    }
    for ended in workers.wait_all(DEADLINE).map_err(|e| e.to_string())? {
        if !ended.status.is_some_and(|s| s.success()) {
            return Err(ended.to_string());
        }
    }

    // Every dialog's record and what its members' destroy handlers recorded.
    let tsx = METHODS.len() as u32;
    let dialogs = a.workers * a.dialogs;
    let mut wrong = Vec::new();
    let mut marks_expected = [0u64; STRIPES];
    for slot in 0..dialogs {
        let r = *calls.lock_records(slot);
        let e = &calls.ended[slot];
        let got = [
            ("requests", r.requests),
            ("responses", r.responses),
            ("cseq", r.cseq),
            ("Dialog::ended runs", e.dialogs.load(Relaxed)),
            ("InvSession::ended runs", e.sessions.load(Relaxed)),
            ("Transaction::ended runs", e.transactions.load(Relaxed)),
            ("retransmits", e.retransmits.load(Relaxed)),
            (
                "transactions the dialog saw end",
                e.terminated.load(Relaxed),
            ),
            ("final session state", e.session_state.load(Relaxed)),
        ];
        let want = [
            tsx,
            tsx,
            tsx,
            1,
            1,
            tsx,
            tsx * RETRANSMITS,
            tsx,
            InvState::Disconnected as u32,
        ];
        for ((what, got), want) in got.into_iter().zip(want) {
            if got != want {
                wrong.push(format!("dialog {slot}: {what} {got}, expected {want}"));
            }
        }
        if r.call_id != *format!("call-{slot}@lockkit.invalid") {
            wrong.push(format!("dialog {slot}: call-id {}", r.call_id));
        }
        marks_expected[slot % STRIPES] += 2 * u64::from(tsx);
    }
    for (s, &want) in marks_expected.iter().enumerate() {
        let got = *calls.lock_marks(s);
        if got != want {
            wrong.push(format!(
                "stripe {s}: {got} marks made under dialog groups, expected {want} (lost \
                 updates: a group did not hold its stripe)"
            ));
        }
    }
    let ends = |f: fn(&Ended) -> &AtomicU32| -> u32 {
        calls.ended.iter().map(|e| f(e).load(Relaxed)).sum()
    };
    println!(
        "  dialogs destroyed: {} (expected {dialogs}), sessions: {}, transactions: {} \
         (expected {}), retransmissions: {} (expected {})",
        ends(|e| &e.dialogs),
        ends(|e| &e.sessions),
        ends(|e| &e.transactions),
        dialogs as u32 * tsx,
        ends(|e| &e.retransmits),
        dialogs as u32 * tsx * RETRANSMITS,
    );
    if !wrong.is_empty() {
        let n = wrong.len();
        wrong.truncate(10);
        return Err(format!("{n} wrong: {}", wrong.join("; ")));
    }
    Ok(format!(
        "{dialogs} dialogs, {} transactions, every destroy handler ran once, no mark lost",
        dialogs as u32 * tsx
    ))
}
