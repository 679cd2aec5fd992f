//! lockkit's modules form layers that point one way (the table in `lockkit/src/lib.rs`'s
//! docs): a module may use modules of lower layers and of its own, never of a higher one, so
//! no import cycle can form between top-level modules. Paths through the crate root's
//! re-exports (`crate::GenLock`) count as uses of the module that defines the item.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

/// Layer of each top-level module of `lockkit/src` (a file, or a folder counted whole).
const LAYERS: &[(&str, u32)] = &[
    ("sys", 0),
    ("regions", 0),
    ("error", 0),
    ("layout", 0),
    ("deadline", 1),
    ("liveness", 1),
    ("shm_safe", 1),
    ("lock_hooks", 1),
    ("model", 2),
    ("raw", 2),
    ("gen_lock", 3),
    ("rec_lock", 3),
    ("rw_lock", 3),
    ("semaphore", 3),
    ("lock_set", 3),
    ("shm_mutex", 3),
    ("condvar", 3),
    ("shm_str", 3),
    ("shm", 4),
    ("lock_debug", 5),
    ("report", 5),
    ("lock_order", 5),
    ("grp", 6),
    ("lockable", 6),
    ("private", 6),
    ("workers", 6),
];

fn src() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/lockkit/src"))
}

/// Every `.rs` file under `dir`, recursively.
fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without comments and without `#[cfg(test)]` tails (unit tests may use any
/// module).
fn code(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Identifiers after each `crate::`, including each name of a `crate::{a, b::c}` group.
fn crate_paths(code: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            out.extend(group.split(',').map(|p| ident(p.trim())));
        } else {
            out.push(ident(rest));
        }
    }
    out.retain(|n| !n.is_empty());
    out
}

/// Root re-exports: item name -> the module that defines it (`pub use gen_lock::{GenLock}`).
fn reexports(lib: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for stmt in lib.split(';') {
        let Some(at) = stmt.find("pub use ") else {
            continue;
        };
        let used = stmt[at + "pub use ".len()..].trim();
        let Some((module, items)) = used.split_once("::") else {
            continue;
        };
        let items = items.trim_start_matches('{').trim_end_matches('}');
        for item in items.split(',') {
            let name = item.trim().rsplit("::").next().unwrap_or("").trim();
            if !name.is_empty() && module != "lockkit_macros" {
                out.insert(name.to_owned(), module.to_owned());
            }
        }
    }
    out
}

#[test]
fn every_module_uses_only_its_own_layer_and_those_below() {
    let layers: BTreeMap<&str, u32> = LAYERS.iter().copied().collect();
    let lib = code(&src().join("lib.rs"));
    let reexported = reexports(&lib);
    let mut all = Vec::new();
    files(src(), &mut all);
    let mut wrong = Vec::new();
    for path in &all {
        let rel = path.strip_prefix(src()).unwrap();
        let top = rel.iter().next().unwrap().to_str().unwrap();
        let top = top.strip_suffix(".rs").unwrap_or(top);
        if top == "lib" || top == "bin" {
            continue;
        }
        let Some(&own) = layers.get(top) else {
            wrong.push(format!(
                "{top}: not in the layer table (add it to LAYERS and lib.rs)"
            ));
            continue;
        };
        for name in crate_paths(&code(path)) {
            let used = match reexported.get(&name) {
                Some(module) => module.as_str(),
                None => name.as_str(),
            };
            let used = if used == "__private" { "private" } else { used };
            if let Some(&theirs) = layers.get(used) {
                if theirs > own {
                    wrong.push(format!(
                        "{} (layer {own}) uses `crate::{name}` of {used} (layer {theirs})",
                        rel.display()
                    ));
                }
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(
        wrong.is_empty(),
        "imports that point up a layer:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_check_sees_an_upward_import() {
    // The scanner itself: a path through a group, one through a root re-export.
    let code = "use crate::{shm::view::View, raw};\nlet x = crate::GenLock::new();";
    assert_eq!(crate_paths(code), ["shm", "raw", "GenLock"]);
    let lib = "pub use gen_lock::{GenLock, GenLockGuard};\npub use liveness::{Owner};";
    let map = reexports(lib);
    assert_eq!(map["GenLock"], "gen_lock");
    assert_eq!(map["Owner"], "liveness");
}
