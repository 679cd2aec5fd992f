//! The macros in an edition-2015 crate: `tests/edition2015_dep` uses every form of
//! `locked!`, `#[shared_locked]` and `#[grp_member]`; it must build and run.

use std::process::Command;

#[test]
fn every_macro_form_compiles_and_runs_in_an_edition_2015_crate() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("edition2015_dep");
    let out = Command::new(cargo)
        .args(["run", "--quiet", "--offline", "--manifest-path"])
        .arg("tests/edition2015_dep/Cargo.toml")
        .arg("--target-dir")
        .arg(&target)
        .env_remove("RUSTFLAGS")
        .output()
        .expect("running cargo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("edition 2015: OK"),
        "tests/edition2015_dep failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}
