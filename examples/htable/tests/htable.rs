//! Runs the two programs of this package as a user would: `htable` with its four workers (one
//! of them killed while it holds a stripe), then `htable-dump` attached to the region by
//! name. Every run has a deadline that only a hang reaches; nothing here depends on how fast
//! the machine is.

#[path = "../../../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use common::{run_program, unique_name};

const HTABLE: &str = env!("CARGO_BIN_EXE_htable");
const DUMP: &str = env!("CARGO_BIN_EXE_htable-dump");
const LIMIT: Duration = Duration::from_secs(120);

/// Unlinks the region's name when the test ends, passed or failed.
struct Unlink(String);
impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = lockkit::ShmRegion::unlink(&self.0);
    }
}

#[test]
fn four_workers_leave_exact_counts_and_a_survivor_repairs_the_killed_workers_stripe() {
    let name = unique_name("htable");
    let _unlink = Unlink(name.clone());
    let run = run_program(HTABLE, &["--name", &name, "--keep"], LIMIT);
    assert!(run.status.success(), "{run}");
    let last = run.stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("verified: 768 live keys, 256 expired, worker ")
            && last.ends_with(" repaired once OK"),
        "{run}"
    );
    // The parent asked the region which lock the dead worker held.
    assert!(
        run.stdout
            .contains("(SIGKILL); the region's report says it held: htable.stripes["),
        "{run}"
    );
    // A survivor was told and repaired the whole stripe under one hold.
    assert_eq!(
        run.stderr
            .matches("died: repaired its 64 buckets under one hold (1 half-written cell(s) freed)")
            .count(),
        1,
        "{run}"
    );

    // The region outlives its creator (--keep): attach by name and dump it.
    let dump = run_program(DUMP, &[&name], LIMIT);
    assert!(dump.status.success(), "{dump}");
    let cells: Vec<&str> = dump
        .stdout
        .lines()
        .filter(|l| l.starts_with("bucket "))
        .collect();
    assert_eq!(cells.len(), 768, "{dump}");
    for n in (0..1024).filter(|n| n % 4 != 0) {
        let version = if n < 256 { 2 } else { 1 };
        let want = format!(": key-{n} = value-{n}-v{version} (expires at 1000000)");
        assert_eq!(
            cells.iter().filter(|l| l.ends_with(&want)).count(),
            1,
            "key-{n}: {dump}"
        );
    }
    assert!(dump.stdout.contains("now = 5"), "{dump}");
    assert!(dump.stdout.ends_with("entries: 768\n"), "{dump}");
    assert!(!dump.stdout.contains("doomed-key"), "{dump}");
    assert!(!dump.stdout.contains("not repaired"), "{dump}");
}

#[test]
fn the_dump_of_a_region_that_does_not_exist_names_it() {
    let name = unique_name("htable-missing");
    let dump = run_program(DUMP, &[&name], LIMIT);
    assert!(!dump.status.success(), "{dump}");
    assert!(dump.stderr.contains(&name), "{dump}");
}

#[test]
fn a_dump_attached_while_the_table_is_live_reports_the_dead_stripe_and_leaves_its_repair_to_the_workers(
) {
    let name = unique_name("htable-live");
    let _unlink = Unlink(name.clone());
    let run = run_program(HTABLE, &["--name", &name, "--dump-after-kill"], LIMIT);
    assert!(run.status.success(), "{run}");
    let stripe = run
        .stdout
        .split("while it held stripe ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .unwrap_or_else(|| panic!("no kill line: {run}"));
    // Before the repair: every key is there (the half-written cell is not shown), and the
    // dumper was told the stripe's holder died, and said so without repairing it.
    assert!(
        run.stdout.contains(&format!(
            "htable-dump (live): stripe {stripe}: its last holder died in an update, not \
             repaired yet\n  htable-dump (live): entries: 1024\n"
        )),
        "{run}"
    );
    // So a worker was still told, and repaired it.
    assert!(
        run.stderr.contains(&format!(
            "was told the holder of stripe {stripe} died: repaired its 64 buckets"
        )),
        "{run}"
    );
    assert!(
        run.stdout
            .lines()
            .last()
            .unwrap_or_default()
            .ends_with(" OK"),
        "{run}"
    );
}
