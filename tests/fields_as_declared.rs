//! The struct rustc compiles is the one lockkit's macros checked: a safe attribute macro
//! placed after `#[derive(ShmSafe)]` or `#[shared_locked]` that rewrites the fields (here
//! every `u64` becomes `&'static u64`, `tests/fields_as_declared_dep/pm`) makes the program
//! fail to compile, at the lockkit macro. (An adversarial review had lockkit's real
//! `ShmSafe`/`ShmZeroable` hold for such structs: a null reference from `alloc_zeroed`, and
//! another process reading through this one's heap address, SIGSEGV.)
//!
//! The same for enums (round 4): a later macro that replaces the enum with a struct holding a
//! reference, renumbers its variants so that none is 0, or adds a variant the derive did not
//! list is refused at the derive, by an exhaustive match over the variants read, a size check
//! against the repr, and an assertion on the discriminants rustc computed.

use std::process::Command;

#[test]
fn an_attribute_macro_after_lockkits_cannot_change_the_fields_it_checked() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fields_as_declared_dep/Cargo.toml");
    let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("fields_as_declared_dep");
    let build = Command::new(&cargo)
        // Every binary, even after one fails, so each macro's refusal is seen.
        .args([
            "build",
            "--offline",
            "--keep-going",
            "--bins",
            "--manifest-path",
        ])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target)
        .env_remove("RUSTFLAGS")
        .output()
        .expect("running cargo");
    let stderr = String::from_utf8_lossy(&build.stderr);
    assert!(
        !build.status.success(),
        "the rewritten structs compiled: lockkit's ShmSafe holds for a &'static field"
    );
    // Refused for the right reason, at both macros, not because the build could not run.
    for (file, at) in [
        ("src/main.rs", "derive(ShmSafe)"),
        ("src/bin/shared_locked.rs", "shared_locked"),
    ] {
        assert!(
            stderr.contains(file) && stderr.contains(at),
            "{file} was not refused at `{at}`:\n{stderr}"
        );
    }
    assert!(
        stderr.contains("expected `PhantomData<u64>`, found `PhantomData<&u64>`"),
        "refused for another reason:\n{stderr}"
    );
    for (file, why) in [
        (
            "src/bin/enum_into_reference.rs",
            "the enum's size is not its repr's",
        ),
        (
            "src/bin/enum_renumbered.rs",
            "no variant's discriminant is 0",
        ),
        (
            "src/bin/enum_extra_variant.rs",
            "non-exhaustive patterns: `Mode::Extra` not covered",
        ),
    ] {
        let refused = stderr
            .split("\nerror")
            .any(|e| e.contains(file) && e.contains(why));
        assert!(refused, "{file} was not refused with `{why}`:\n{stderr}");
    }
}
