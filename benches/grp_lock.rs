//! What a group lock costs against taking the same locks by hand, uncontended.
//!
//! `cargo bench --bench grp_lock`; the figures live in BENCHMARKS.md.
//!
//! The machines these run on are shared and noisy, so this harness does not trust one long
//! measurement per variant: it runs `ROUNDS` short rounds, and in each round measures every
//! variant once, back to back (the order rotating from round to round). A ratio is taken
//! inside each round, between measurements made moments apart, and the table reports the
//! median over the rounds, of the nanoseconds and of the ratios (many short rounds: a burst
//! of load from another process spoils a few rounds, which the median drops, instead of one
//! variant's whole measurement). Every guard goes through `black_box`, so the compiler cannot
//! drop the work.
//!
//! - `GenLock`: one bare `GenLock`, lock + unlock (the yardstick for the group with nothing
//!   chained).
//! - `GrpLock, nothing chained`: `GrpLock::lock` + guard drop.
//! - `by hand, n + 1 GenLocks`: n + 1 `GenLock`s taken in order, released in reverse.
//! - `GrpLock, n chained`: a group with n `GenLock`s chained (the group's own lock makes
//!   n + 1), for n = 1 and 3.
//! - `locked!, n GenLocks`: `locked!(a, b => ..)` over the same n locks as by hand (the macro
//!   sorts them into the global order and releases them on every path), for n = 2 and 4.
//! - `chain_lock + unchain_lock`: one edit of a group's chain and its undo, on a group that
//!   chains 3 locks already (the cycle and shared-lock checks of the lock graph run each
//!   time); compared with a lock + unlock of that group.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use lockkit::grp::GrpLock;
use lockkit::{locked, GenLock};

const ROUNDS: usize = 31;
const ITERS: u32 = 500_000;

struct Variant {
    name: &'static str,
    run: Box<dyn Fn(u32)>,
    /// Index of the variant this one is compared with, if any.
    against: Option<usize>,
}

fn locks(n: usize) -> Vec<Arc<GenLock>> {
    (0..n).map(|_| Arc::new(GenLock::new())).collect()
}

fn chained(n: usize) -> GrpLock {
    let g = GrpLock::new();
    for (i, l) in locks(n).into_iter().enumerate() {
        // Around the own lock: one before it, the others after.
        g.chain_lock(l, i as i32 * 2 - 1).unwrap();
    }
    g
}

fn by_hand(n: usize) -> Box<dyn Fn(u32)> {
    let ls = locks(n);
    match n {
        2 => Box::new(move |iters| {
            let (a, b) = (&*ls[0], &*ls[1]);
            for _ in 0..iters {
                let ga = black_box(black_box(a).lock());
                let gb = black_box(black_box(b).lock());
                drop(gb);
                drop(ga);
            }
        }),
        4 => Box::new(move |iters| {
            let (a, b, c, d) = (&*ls[0], &*ls[1], &*ls[2], &*ls[3]);
            for _ in 0..iters {
                let ga = black_box(black_box(a).lock());
                let gb = black_box(black_box(b).lock());
                let gc = black_box(black_box(c).lock());
                let gd = black_box(black_box(d).lock());
                drop(gd);
                drop(gc);
                drop(gb);
                drop(ga);
            }
        }),
        _ => unreachable!("2 or 4 locks"),
    }
}

fn by_locked(n: usize) -> Box<dyn Fn(u32)> {
    let ls = locks(n);
    match n {
        2 => Box::new(move |iters| {
            let (a, b) = (&*ls[0], &*ls[1]);
            for _ in 0..iters {
                locked!(black_box(a), black_box(b) => { black_box(()) });
            }
        }),
        4 => Box::new(move |iters| {
            let (a, b, c, d) = (&*ls[0], &*ls[1], &*ls[2], &*ls[3]);
            for _ in 0..iters {
                locked!(black_box(a), black_box(b), black_box(c), black_box(d) => {
                    black_box(())
                });
            }
        }),
        _ => unreachable!("2 or 4 locks"),
    }
}

fn chain_edit() -> Box<dyn Fn(u32)> {
    let g = chained(3);
    let extra: Arc<dyn lockkit::grp::ChainLock> = Arc::new(GenLock::new());
    Box::new(move |iters| {
        for _ in 0..iters {
            black_box(&g).chain_lock(extra.clone(), 9).unwrap();
            assert!(black_box(&g).unchain_lock(&extra));
        }
    })
}

fn group(g: GrpLock) -> Box<dyn Fn(u32)> {
    Box::new(move |iters| {
        for _ in 0..iters {
            drop(black_box(black_box(&g).lock()));
        }
    })
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too: then be quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let (rounds, iters) = if quick { (1, 1_000) } else { (ROUNDS, ITERS) };

    let bare = Arc::new(GenLock::new());
    let variants = vec![
        Variant {
            name: "GenLock",
            run: Box::new(move |iters| {
                for _ in 0..iters {
                    drop(black_box(black_box(&*bare).lock()));
                }
            }),
            against: None,
        },
        Variant {
            name: "GrpLock, nothing chained",
            run: group(GrpLock::new()),
            against: Some(0),
        },
        Variant {
            name: "by hand, 2 GenLocks",
            run: by_hand(2),
            against: None,
        },
        Variant {
            name: "GrpLock, 1 chained",
            run: group(chained(1)),
            against: Some(2),
        },
        Variant {
            name: "by hand, 4 GenLocks",
            run: by_hand(4),
            against: None,
        },
        Variant {
            name: "GrpLock, 3 chained",
            run: group(chained(3)),
            against: Some(4),
        },
        Variant {
            name: "locked!, 2 GenLocks",
            run: by_locked(2),
            against: Some(2),
        },
        Variant {
            name: "locked!, 4 GenLocks",
            run: by_locked(4),
            against: Some(4),
        },
        Variant {
            name: "chain_lock + unchain_lock",
            run: chain_edit(),
            against: Some(5),
        },
    ];

    // Warm up every variant (page faults, branch predictors, CPU frequency).
    for v in &variants {
        (v.run)(iters / 4 + 1);
    }
    let mut ns: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    for round in 0..rounds {
        let mut this_round = vec![0.0; variants.len()];
        for k in 0..variants.len() {
            let i = (k + round) % variants.len();
            let t = Instant::now();
            (variants[i].run)(iters);
            this_round[i] = t.elapsed().as_nanos() as f64 / f64::from(iters);
        }
        for (i, x) in this_round.into_iter().enumerate() {
            ns[i].push(x);
        }
    }

    println!("{rounds} rounds of {iters} lock+unlock each, variants interleaved; medians");
    println!();
    println!("| variant | median ns | ratio (median of per-round ratios) |");
    println!("|---|---|---|");
    for (i, v) in variants.iter().enumerate() {
        let mut mine = ns[i].clone();
        let m = median(&mut mine);
        let ratio = match v.against {
            Some(j) => {
                let mut r: Vec<f64> = ns[i].iter().zip(&ns[j]).map(|(a, b)| a / b).collect();
                let (lo, hi) = (
                    r.iter().cloned().fold(f64::INFINITY, f64::min),
                    r.iter().cloned().fold(0.0, f64::max),
                );
                format!(
                    "**{:.2}x** `{}` (rounds: {lo:.2}-{hi:.2})",
                    median(&mut r),
                    variants[j].name
                )
            }
            None => String::new(),
        };
        println!("| `{}` | {m:.2} | {ratio} |", v.name);
    }
}
