//! `lockkit-top`: who holds which lock in a lockkit region, from another terminal.
//!
//! ```text
//! lockkit-top [--watch] [--interval MS] [--count N] [--threshold SECS] [--json] /NAME
//! ```
//!
//! Attaches to the named region read-only (it never takes a lock, so it works while the
//! application is wedged) and prints every lock that is held, waited for, or was left
//! inconsistent by a holder that died: where it is (published name and field), its kind,
//! the holder's pid and tid and whether it is alive, whether threads wait. With `--watch` it
//! refreshes every second (like `top`) and shows how long each holder has been seen holding
//! its lock; a lock held longer than `--threshold` seconds (default 5) is flagged. `--json`
//! prints one JSON object per refresh, one per line. `--count N` stops after N refreshes.
//! Exit status: 0, or 2 if the region cannot be opened or read.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use lockkit::report::{Inspector, LockInfo, LockReport};

struct Args {
    name: String,
    watch: bool,
    json: bool,
    interval: Duration,
    count: Option<u64>,
    threshold: Duration,
}

const USAGE: &str = "usage: lockkit-top [--watch] [--interval MS] [--count N] \
                     [--threshold SECS] [--json] /NAME";

fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut name = None;
    let mut args = Args {
        name: String::new(),
        watch: false,
        json: false,
        interval: Duration::from_secs(1),
        count: None,
        threshold: Duration::from_secs(5),
    };
    while let Some(a) = it.next() {
        let mut value = |what: &str| it.next().ok_or(format!("{a} needs {what}"));
        match a.as_str() {
            "--watch" | "-w" => args.watch = true,
            "--json" => args.json = true,
            "--interval" => {
                let ms: u64 = value("milliseconds")?
                    .parse()
                    .map_err(|_| "--interval takes milliseconds")?;
                args.interval = Duration::from_millis(ms.max(10));
            }
            "--count" => {
                args.count = Some(
                    value("a number")?
                        .parse()
                        .map_err(|_| "--count takes a number")?,
                );
                args.watch = true;
            }
            "--threshold" => {
                let s: f64 = value("seconds")?
                    .parse()
                    .map_err(|_| "--threshold takes seconds")?;
                if !(s.is_finite() && s >= 0.0) {
                    return Err("--threshold takes a non-negative number of seconds".into());
                }
                args.threshold = Duration::from_secs_f64(s);
            }
            "-h" | "--help" => return Err(USAGE.into()),
            s if s.starts_with('-') => return Err(format!("unknown option {s}\n{USAGE}")),
            s if name.is_none() => name = Some(s.to_owned()),
            s => return Err(format!("one region name, not also {s}\n{USAGE}")),
        }
    }
    args.name = name.ok_or(USAGE)?;
    Ok(args)
}

/// A holder seen holding a lock: since when (by this program's clock).
type Seen = HashMap<(u64, u32), Instant>;

fn key(l: &LockInfo) -> Option<(u64, u32)> {
    l.holder.map(|o| (l.offset, o.tid))
}

fn render(report: &LockReport, seen: &Seen, args: &Args, now: Instant) -> String {
    let held_for = |l: &LockInfo| key(l).and_then(|k| seen.get(&k)).map(|t| now - *t);
    if args.json {
        let extra = |l: &LockInfo| {
            let ms = held_for(l).map_or("null".into(), |d| d.as_millis().to_string());
            let long = held_for(l).is_some_and(|d| d >= args.threshold);
            format!("\"seen_held_ms\":{ms},\"held_too_long\":{long}")
        };
        return format!("{}\n", report.to_json_with(extra));
    }
    let mut out = report.to_string();
    if args.watch {
        for l in &report.locks {
            if let Some(d) = held_for(l) {
                let flag = if d >= args.threshold {
                    "  <-- held too long"
                } else {
                    ""
                };
                out.push_str(&format!(
                    "{} held by tid {} for at least {:.1} s{flag}\n",
                    l.place(),
                    l.holder.map_or(0, |o| o.tid),
                    d.as_secs_f64()
                ));
            }
        }
    }
    out
}

/// `2026-12-07 02:22:03 UTC`: the wall-clock time of a `--watch` screen.
fn utc(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's `civil_from_days`).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

fn main() -> ExitCode {
    // Output piped into `head` and closed: end quietly, as a C tool does, instead of
    // panicking on the failed write.
    // SAFETY: restoring the default action of SIGPIPE, before any thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let top = match Inspector::open(&args.name) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("lockkit-top: {e}");
            return ExitCode::from(2);
        }
    };
    let mut seen = Seen::new();
    let mut rounds = 0u64;
    loop {
        let now = Instant::now();
        let report = match top.report() {
            Ok(r) => r,
            Err(e) => {
                eprintln!("lockkit-top: {e}");
                return ExitCode::from(2);
            }
        };
        // Keep the first sighting of each (lock, holder) still holding; forget the rest.
        let current: Vec<(u64, u32)> = report.locks.iter().filter_map(key).collect();
        seen.retain(|k, _| current.contains(k));
        for k in current {
            seen.entry(k).or_insert(now);
        }
        let text = render(&report, &seen, &args, now);
        if args.watch && !args.json {
            print!(
                "\x1b[H\x1b[2J{} at {}\n{text}",
                top.name(),
                utc(std::time::SystemTime::now())
            );
        } else {
            print!("{text}");
        }
        rounds += 1;
        if !args.watch || args.count.is_some_and(|c| rounds >= c) {
            return ExitCode::SUCCESS;
        }
        std::thread::sleep(args.interval);
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn the_watch_screen_prints_a_readable_utc_time() {
        let at = |s| super::utc(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(at(951_786_061), "2000-02-29 01:01:01 UTC");
        assert_eq!(at(1_796_610_123), "2026-12-07 02:22:03 UTC");
    }
}
