//! Runs the `dialog` program as a user would: forked workers, each with a transport and a
//! timer thread, dialogs and transactions in group locks over a shared striped table. The
//! deadline only catches a hang; nothing here depends on how fast the machine is.

#[path = "../../../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use common::run_program;

const DIALOG: &str = env!("CARGO_BIN_EXE_dialog");
const LIMIT: Duration = Duration::from_secs(120);

#[test]
fn every_dialog_and_transaction_is_counted_exactly_and_destroyed_once() {
    let run = run_program(DIALOG, &[], LIMIT);
    assert!(run.status.success(), "{run}");
    assert!(
        run.stdout.contains(
            "dialogs destroyed: 800 (expected 800), sessions: 800, transactions: 2400 \
             (expected 2400), retransmissions: 4800 (expected 4800)"
        ),
        "{run}"
    );
    assert!(
        run.stdout.ends_with(
            "verified: 800 dialogs, 2400 transactions, every destroy handler ran once, no \
             mark lost OK\n"
        ),
        "{run}"
    );
}

#[test]
fn more_dialogs_than_the_shared_table_holds_are_refused_before_anything_runs() {
    let run = run_program(DIALOG, &["--workers", "8", "--dialogs", "200"], LIMIT);
    assert_eq!(run.status.code(), Some(2), "{run}");
    assert!(
        run.stderr
            .contains("8 workers x 200 dialogs is more than the table's 1024 records"),
        "{run}"
    );
}
