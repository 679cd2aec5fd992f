//! Every public item that a feature gates says so in the docs (`doc(cfg)`, shown on
//! docs.rs, whose build enables every feature with `--cfg docsrs`): a user who reads about
//! `lockkit::lock_order` learns which feature brings it, instead of meeting it first as a
//! compile error (issue 24.7).

use std::fs;
use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Whether a line declares an item the crate's users can see (`pub` without a restriction,
/// or a trait implementation, which shows on the type's page).
fn public_item(line: &str) -> bool {
    let l = line.trim_start();
    (l.starts_with("pub ") && !l.starts_with("pub("))
        || l.starts_with("unsafe impl ")
        || (l.starts_with("impl") && l.contains(" for "))
}

#[test]
fn every_feature_gated_public_item_names_its_feature_in_the_docs() {
    let src = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/lockkit/src"));
    let mut all = Vec::new();
    files(src, &mut all);
    let mut missing = Vec::new();
    let mut checked = 0;
    for path in &all {
        let text = fs::read_to_string(path).unwrap();
        let text = text.split("#[cfg(test)]").next().unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let Some(rest) = line.trim().strip_prefix("#[cfg(feature = \"") else {
                continue;
            };
            let feature = &rest[..rest.find('"').unwrap()];
            // The attributes and doc comments around it, up to the item.
            let mut j = i + 1;
            while j < lines.len() && {
                let l = lines[j].trim_start();
                l.starts_with("#[") || l.starts_with("///") || l.starts_with("//")
            } {
                j += 1;
            }
            let Some(item) = lines.get(j) else { continue };
            if !public_item(item) {
                continue;
            }
            checked += 1;
            let mut k = i;
            while k > 0 && {
                let l = lines[k - 1].trim_start();
                l.starts_with("#[") || l.starts_with("///")
            } {
                k -= 1;
            }
            let wanted = format!("doc(cfg(feature = \"{feature}\"))");
            if !lines[k..j].iter().any(|l| l.contains(&wanted)) {
                missing.push(format!(
                    "{}:{}: `{}` needs #[cfg_attr(docsrs, {wanted})]",
                    path.strip_prefix(src).unwrap().display(),
                    j + 1,
                    item.trim()
                ));
            }
        }
    }
    assert!(
        checked >= 5,
        "the scan found only {checked} gated public items"
    );
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn docs_rs_builds_every_feature_with_docsrs_set() {
    let manifest =
        fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/lockkit/Cargo.toml")).unwrap();
    let meta = manifest
        .split("[package.metadata.docs.rs]")
        .nth(1)
        .expect("lockkit/Cargo.toml has [package.metadata.docs.rs]");
    let meta = meta.split("\n[").next().unwrap();
    assert!(meta.contains("all-features = true"), "{meta}");
    assert!(
        meta.contains(r#"rustdoc-args = ["--cfg", "docsrs"]"#),
        "{meta}"
    );
    let lib =
        fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/lockkit/src/lib.rs")).unwrap();
    assert!(lib.contains("#![cfg_attr(docsrs, feature(doc_cfg))]"));
}
