//! Compile errors are product: every misuse the macros and types catch has a case here, with
//! the compiler's message in the `.stderr` beside it (regenerate with `TRYBUILD=overwrite`,
//! then read every changed `.stderr` before committing).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/shared_locked/*.rs");
    t.compile_fail("tests/ui/locked/*.rs");
    t.compile_fail("tests/ui/grp_member/*.rs");
    t.compile_fail("tests/ui/shm/*.rs");
}
