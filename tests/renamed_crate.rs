//! The macros under a renamed dependency: `tests/renamed_dep` depends on lockkit as `lk`
//! (so `::lockkit` does not resolve there) and shadows std's names with its own types; it
//! must build and run.

use std::process::Command;

#[test]
fn every_macro_works_with_lockkit_renamed_and_std_names_shadowed() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("renamed_dep");
    let out = Command::new(cargo)
        .args(["run", "--quiet", "--offline", "--manifest-path"])
        .arg("tests/renamed_dep/Cargo.toml")
        .arg("--target-dir")
        .arg(&target)
        .env_remove("RUSTFLAGS")
        .output()
        .expect("running cargo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("renamed crate: OK"),
        "tests/renamed_dep failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}
