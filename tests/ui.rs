//! Compile errors are product: every misuse the macros and types catch has a case here, with
//! the compiler's message in the `.stderr` beside it (regenerate with `TRYBUILD=overwrite`,
//! then read every changed `.stderr` before committing).
//!
//! The `.stderr` files come from the rustc named in `tests/ui/TOOLCHAIN`: rustc's wording and
//! layout change between releases, so on another toolchain the cases are skipped with a
//! message saying so (the crate's `rust-version` is older than the toolchain the files were
//! made with). Set `LOCKKIT_UI_ANY_RUSTC=1` to run them anyway.

use std::path::Path;

/// `major.minor` of the rustc that compiles the cases.
fn rustc_version() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .expect("running rustc --version");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let full = text.split_whitespace().nth(1).unwrap_or_default();
    full.split('.').take(2).collect::<Vec<_>>().join(".")
}

fn pinned() -> String {
    std::fs::read_to_string("tests/ui/TOOLCHAIN")
        .expect("tests/ui/TOOLCHAIN names the rustc the .stderr files come from")
        .trim()
        .to_owned()
}

#[test]
fn ui() {
    let (have, want) = (rustc_version(), pinned());
    if have != want && std::env::var_os("LOCKKIT_UI_ANY_RUSTC").is_none() {
        eprintln!(
            "SKIPPED tests/ui: the .stderr files come from rustc {want} and this is rustc \
             {have}; run with rustc {want}, or set LOCKKIT_UI_ANY_RUSTC=1 to compare anyway"
        );
        return;
    }
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/shared_locked/*.rs");
    t.compile_fail("tests/ui/locked/*.rs");
    t.compile_fail("tests/ui/grp_member/*.rs");
    t.compile_fail("tests/ui/shm/*.rs");
    t.compile_fail("tests/ui/shm_safe/*.rs");
}

/// The string literals of a Rust source file, escapes and line continuations resolved.
fn string_literals(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = src.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '"' => {
                let mut s = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => match chars.next() {
                            Some('\n') => {
                                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                                    chars.next();
                                }
                            }
                            Some('n') => s.push('\n'),
                            Some(e) => s.push(e),
                            None => {}
                        },
                        c => s.push(c),
                    }
                }
                out.push(s);
            }
            _ => {}
        }
    }
    out
}

fn stderr_files(dir: &Path, out: &mut String) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            stderr_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "stderr") {
            out.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
}

/// Every message `lockkit-macros` can emit (all of them live in `src/msg.rs`) appears in some
/// `.stderr` under `tests/ui/`: each has a case that shows it to a reader.
#[test]
fn every_macro_error_message_has_a_ui_case() {
    let msgs = std::fs::read_to_string("lockkit-macros/src/msg.rs").unwrap();
    let mut stderr = String::new();
    stderr_files(Path::new("tests/ui"), &mut stderr);
    let mut missing = Vec::new();
    let mut checked = 0;
    for lit in string_literals(&msgs) {
        // The longest piece without a `{placeholder}` identifies the message.
        let key = lit
            .split(['{', '}'])
            .step_by(2)
            .max_by_key(|p| p.len())
            .unwrap_or_default()
            .trim();
        if key.len() < 12 {
            continue; // format strings of `fill` itself
        }
        checked += 1;
        if !stderr.contains(key) {
            missing.push(key.to_owned());
        }
    }
    assert!(checked >= 40, "read only {checked} messages from msg.rs");
    assert!(
        missing.is_empty(),
        "messages with no case under tests/ui/ (add one, read its .stderr):\n{}",
        missing.join("\n")
    );
}

/// No other file of `lockkit-macros` writes an error message of its own: they all come from
/// `msg.rs`, so the test above sees every one.
#[test]
fn macro_errors_are_written_only_in_msg_rs() {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(Path::new("lockkit-macros/src"), &mut files);
    let mut bad = Vec::new();
    for f in files {
        if f.ends_with("msg.rs") || f.ends_with("lib.rs") {
            continue;
        }
        let src = std::fs::read_to_string(&f).unwrap();
        let src = src.split("#[cfg(test)]").next().unwrap();
        for (i, line) in src.lines().enumerate() {
            let l = line.trim();
            let makes_error = ["cx.error(", "Error::new(", "Error::new_spanned(", ".error("]
                .iter()
                .any(|p| l.contains(p));
            if makes_error && string_literals(l).iter().any(|s| s.len() >= 16) {
                bad.push(format!("{}:{}: {l}", f.display(), i + 1));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "error text outside msg.rs:\n{}",
        bad.join("\n")
    );
}

/// "One mistake, one error": a typo in a marker is reported once, and the user's code that
/// uses the struct (its accessors, `alloc_zeroed`, `new`) raises nothing more.
#[test]
fn one_typo_gives_exactly_one_error() {
    let stderr = std::fs::read_to_string("tests/ui/shared_locked/one_typo_one_error.stderr")
        .expect("the case's .stderr");
    let errors = stderr.lines().filter(|l| l.starts_with("error")).count();
    assert_eq!(errors, 1, "{stderr}");
    assert!(stderr.contains("no field named `calsl`"), "{stderr}");
}

/// "One mistake, one error" for the mistakes users made (issue 22): each of these cases
/// reports exactly one error, although the user's code goes on to use what it declared.
#[test]
fn each_of_these_mistakes_gives_exactly_one_error() {
    let cases = [
        "grp_member/generic",
        "grp_member/lifetime",
        "grp_member/strong_reference_to_a_group",
        "locked/await_after_async_closure",
        "locked/await_from_macro_rules",
        "locked/mut_name",
        "locked/return_from_macro_rules",
        "locked/striped_field_indexed",
        "locked/rwlock_without_read_or_write",
        "locked/rw_field_without_read_or_write",
        "locked/rw_field_in_several_without_read_or_write",
        "locked/rw_striped_field_indexed",
        "shared_locked/rw_lock_accessor_called",
        "shared_locked/rw_stripe_accessor_called",
        "shared_locked/rw_accessor_names_clash",
        "shared_locked/rw_lock_marker_not_a_rw_lock",
        "shared_locked/rw_lock_set_marker_not_a_set",
        "shared_locked/lock_marker_on_rw_lock",
        "shared_locked/accessor_names_clash",
        "shared_locked/applied_twice",
        "shared_locked/const_generic",
        "shared_locked/crate_name_typo",
        "shared_locked/generic_new_is_called",
        "shared_locked/guarded_and_striped",
        "shared_locked/lock_set_guarded",
        "shared_locked/lock_set_striped",
        "shared_locked/marker_with_a_path",
        "shared_locked/with_derive_shm_safe",
    ];
    for case in cases {
        let path = format!("tests/ui/{case}.stderr");
        let stderr = std::fs::read_to_string(&path).expect("the case's .stderr");
        let errors = stderr.lines().filter(|l| l.starts_with("error")).count();
        assert_eq!(errors, 1, "{path}:\n{stderr}");
    }
}
