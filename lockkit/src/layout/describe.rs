//! A layout written out as text (one line per field, recursively), stored in the region when
//! an object is published, and the comparison that names the first field where two layouts
//! differ.
//!
//! The text is read back from shared memory that any process attached to the region can
//! scribble on: decoding accepts any bytes, never panics, and bounds what it keeps.

use std::fmt::Write;

use super::{Shape, TypeLayout};

/// The most bytes of description a region stores for one type: a type whose description is
/// longer cannot be used in a region (it could not be compared whole).
pub(crate) const MAX_DESCRIPTION: usize = 64 * 1024;
/// How deep descriptions go: a type nested deeper cannot be used in a region. (Messages,
/// which need not be whole, are cut here.)
pub(crate) const MAX_DEPTH: usize = 64;

/// Why a type's layout cannot be stored whole, so that the region could not compare it
/// whole with another program's: it is refused instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Undescribable {
    /// The description would take this many bytes, more than [`MAX_DESCRIPTION`].
    TooLarge(usize),
    /// The type nests deeper than [`MAX_DEPTH`].
    TooDeep,
}

impl std::fmt::Display for Undescribable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Undescribable::TooLarge(n) => write!(
                f,
                "its layout description takes {n} bytes, more than the {MAX_DESCRIPTION} a \
                 region stores per type; split it into smaller objects linked by ShmPtr"
            ),
            Undescribable::TooDeep => write!(
                f,
                "it nests more than {MAX_DEPTH} levels deep; flatten it, or split it into \
                 objects linked by ShmPtr"
            ),
        }
    }
}

/// One field (or element, or the type itself at path `""`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    pub(crate) path: String,
    pub(crate) offset: usize,
    pub(crate) size: usize,
    pub(crate) align: usize,
    /// What the field is, without type names: `u32`, `AtomicU64`, `array of 4`, `struct`,
    /// `enum u8 { Idle = 0, Busy = 1 }`, `Option`, `ShmPtr to 16 bytes`,
    /// `lockkit::GenLock/1<futex>`, `PhantomData`.
    pub(crate) what: String,
}

fn what(l: &TypeLayout) -> String {
    match &l.shape {
        Shape::Scalar(k) => k.name().to_owned(),
        Shape::Atomic(k) => {
            let n = k.name();
            let mut s = String::from("Atomic");
            let mut c = n.chars();
            if let Some(f) = c.next() {
                s.extend(f.to_uppercase());
                s.push_str(c.as_str());
            }
            s
        }
        Shape::Array { len, .. } => format!("array of {len}"),
        Shape::Struct { .. } => "struct".to_owned(),
        Shape::Enum { repr, variants } => {
            let vs: Vec<String> = variants
                .iter()
                .map(|v| format!("{} = {}", v.name, v.value))
                .collect();
            format!("enum {} {{ {} }}", repr.name(), vs.join(", "))
        }
        Shape::Option { .. } => "Option".to_owned(),
        Shape::Ptr {
            target_size,
            target_align,
        } => format!("ShmPtr to {target_size} bytes (align {target_align})"),
        Shape::Opaque { id, param: "" } => (*id).to_owned(),
        Shape::Opaque { id, param } => format!("{id}<{param}>"),
        Shape::Empty => "PhantomData".to_owned(),
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

/// Appends `l`'s lines; returns `false` if it was cut at [`MAX_DEPTH`].
fn flatten(l: &TypeLayout, path: String, offset: usize, depth: usize, out: &mut Vec<Line>) -> bool {
    out.push(Line {
        path: path.clone(),
        offset,
        size: l.size,
        align: l.align,
        what: what(l),
    });
    let nested = match &l.shape {
        Shape::Array { len, .. } => *len > 0,
        Shape::Struct { fields } => !fields.is_empty(),
        Shape::Option { .. } => true,
        _ => false,
    };
    if depth >= MAX_DEPTH {
        return !nested;
    }
    match &l.shape {
        Shape::Array { elem, len } if *len > 0 => {
            flatten(elem, format!("{path}[i]"), offset, depth + 1, out)
        }
        Shape::Struct { fields } => {
            let mut whole = true;
            for f in *fields {
                whole &= flatten(
                    f.layout,
                    join(&path, f.name),
                    offset.saturating_add(f.offset),
                    depth + 1,
                    out,
                );
            }
            whole
        }
        // Where the payload sits inside an Option is the compiler's choice; it is described
        // at the Option's own offset.
        Shape::Option { some } => flatten(some, format!("{path}?"), offset, depth + 1, out),
        _ => true,
    }
}

/// `l` as lines, the type itself first (cut at [`MAX_DEPTH`]: for messages).
pub(crate) fn lines(l: &TypeLayout) -> Vec<Line> {
    let mut out = Vec::new();
    flatten(l, String::new(), 0, 0, &mut out);
    out
}

/// Tabs and newlines separate the stored fields; nothing of ours contains them, but a
/// hand-written layout might.
fn clean(s: &str) -> String {
    s.replace(['\t', '\n'], " ")
}

/// The stored form: a line per [`Line`], fields separated by tabs; the whole of it, or why
/// it cannot be had.
pub(crate) fn encode(l: &TypeLayout) -> Result<Vec<u8>, Undescribable> {
    let mut all = Vec::new();
    if !flatten(l, String::new(), 0, 0, &mut all) {
        return Err(Undescribable::TooDeep);
    }
    let mut out = String::new();
    for line in all {
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}",
            clean(&line.path),
            line.offset,
            line.size,
            line.align,
            clean(&line.what)
        );
        if out.len() > MAX_DESCRIPTION {
            // Counted on to the end, for the message.
            let more: usize = lines_len(l);
            return Err(Undescribable::TooLarge(more));
        }
    }
    Ok(out.into_bytes())
}

/// The length of `l`'s whole description, for the message that refuses it.
fn lines_len(l: &TypeLayout) -> usize {
    let mut all = Vec::new();
    flatten(l, String::new(), 0, 0, &mut all);
    all.iter()
        .map(|line| {
            format!(
                "{}\t{}\t{}\t{}\t{}\n",
                clean(&line.path),
                line.offset,
                line.size,
                line.align,
                clean(&line.what)
            )
            .len()
        })
        .sum()
}

/// `s` with every control character replaced by `?`: text read from a region (names, lock
/// sites, layout descriptions) is whatever a writer of the region put there, and reaches
/// messages and terminals (a terminal escape must not).
pub(crate) fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Reads back what [`encode`] wrote; lines that do not parse (a damaged region) are skipped.
pub(crate) fn decode(bytes: &[u8]) -> Vec<Line> {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_DESCRIPTION)]);
    text.lines()
        .filter_map(|l| {
            let mut parts = l.split('\t');
            // The region's bytes, which reach messages and terminals.
            let clean = printable;
            let path = clean(parts.next()?);
            let offset = parts.next()?.parse().ok()?;
            let size = parts.next()?.parse().ok()?;
            let align = parts.next()?.parse().ok()?;
            let what = clean(parts.next()?);
            Some(Line {
                path,
                offset,
                size,
                align,
                what,
            })
        })
        .collect()
}

fn field_name(path: &str) -> String {
    if path.is_empty() {
        "the type".to_owned()
    } else {
        format!("field `{path}`")
    }
}

/// How one line differs between here and there, if it does.
fn compare(here: &Line, there: &Line) -> Option<String> {
    let name = field_name(&here.path);
    if here.what != there.what {
        return Some(format!(
            "{name} at offset {}: {} here, {} in the region",
            here.offset, here.what, there.what
        ));
    }
    if here.offset != there.offset {
        return Some(format!(
            "{name} ({}): at offset {} here, {} in the region",
            here.what, here.offset, there.offset
        ));
    }
    if (here.size, here.align) != (there.size, there.align) {
        return Some(format!(
            "{name} at offset {} ({}): {} bytes (align {}) here, {} bytes (align {}) in the \
             region",
            here.offset, here.what, here.size, here.align, there.size, there.align
        ));
    }
    None
}

/// The first difference between this program's layout `here` and the region's description
/// `there`, fields before the type as a whole (a field says more than a size); with a build
/// hint when the two programs disagree on lockkit's `lock-debug` feature (which changes
/// every lock's layout).
pub(crate) fn difference(here: &TypeLayout, there: &[Line]) -> String {
    let here = lines(here);
    let text = first_difference(&here, there);
    let debug = |lines: &[Line]| lines.iter().any(|l| l.what.contains(DEBUG_MARK));
    match (debug(&here), debug(there)) {
        (false, true) => format!(
            "{text} (the region was made by a program built with lockkit's `lock-debug` \
             feature, and this one was built without it: build both with the same lockkit \
             features, `features = [\"lock-debug\"]` in both or in neither)"
        ),
        (true, false) => format!(
            "{text} (this program was built with lockkit's `lock-debug` feature, and the \
             region was made by one built without it: build both with the same lockkit \
             features, `features = [\"lock-debug\"]` in both or in neither)"
        ),
        _ => text,
    }
}

/// What the layout of a lock built with `lock-debug` carries in its name
/// (`lockkit::GenLock/1+debug`).
const DEBUG_MARK: &str = "+debug";

fn first_difference(here: &[Line], there: &[Line]) -> String {
    if there.is_empty() {
        return "the region keeps no readable description of its type".to_owned();
    }
    let find = |path: &str| there.iter().find(|t| t.path == path);
    for h in here.iter().filter(|h| !h.path.is_empty()) {
        match find(&h.path) {
            Some(t) => {
                if let Some(d) = compare(h, t) {
                    return d;
                }
            }
            None => {
                return format!(
                    "{} ({} at offset {}) is not in the region's type",
                    field_name(&h.path),
                    h.what,
                    h.offset
                )
            }
        }
    }
    for t in there.iter().filter(|t| !t.path.is_empty()) {
        if !here.iter().any(|h| h.path == t.path) {
            return format!(
                "the region's type has a field `{}` ({} at offset {}) that this one does not",
                t.path, t.what, t.offset
            );
        }
    }
    if let (Some(h), Some(t)) = (here.first(), find("")) {
        if let Some(d) = compare(h, t) {
            return d;
        }
    }
    "the fields agree as far as the region describes them, but the fingerprints differ \
     (a description cut short, or a damaged one)"
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ShmSafe;

    #[test]
    fn a_description_survives_the_round_trip() {
        let l = <([u32; 3], Option<u8>, crate::GenLock)>::LAYOUT;
        assert_eq!(decode(&encode(l).unwrap()), lines(l));
        let paths: Vec<_> = lines(l).into_iter().map(|l| l.path).collect();
        assert_eq!(paths, ["", "0", "0[i]", "1", "1?", "2"]);
    }

    #[test]
    fn a_lock_debug_mismatch_says_how_to_build() {
        // A region made by the other build: every lock's name with or without the mark.
        let here = <(u64, crate::GenLock)>::LAYOUT;
        let mut there = lines(here);
        for l in &mut there {
            l.what = if l.what.contains(DEBUG_MARK) {
                l.what.replace(DEBUG_MARK, "")
            } else {
                l.what.replace("GenLock/1", "GenLock/1+debug")
            };
        }
        let text = difference(here, &there);
        assert!(text.contains("field `1` at offset 8"), "{text}");
        assert!(text.contains("`lock-debug` feature"), "{text}");
        assert!(text.contains("`features = [\"lock-debug\"]` in both or in neither"));
        // Other differences get no such hint.
        let plain = difference(<(u64, u32)>::LAYOUT, &lines(<(u64, u64)>::LAYOUT));
        assert!(!plain.contains("lock-debug"), "{plain}");
    }

    #[test]
    fn garbage_decodes_to_what_parses_and_never_panics() {
        assert!(decode(b"").is_empty());
        assert!(decode(&[0xff; 100]).is_empty());
        let mut bytes = encode(u64::LAYOUT).unwrap();
        bytes.extend_from_slice(b"x\t1\t2\nhalf a line\t\t\t\t\n\t9\t9\t9\tu8\n");
        let got = decode(&bytes);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[1].what, "u8");
    }

    #[test]
    fn the_first_difference_is_named() {
        let region = decode(&encode(<(u32, u8)>::LAYOUT).unwrap());
        assert_eq!(
            difference(<(u64, u8)>::LAYOUT, &region),
            "field `0` at offset 0: u64 here, u32 in the region"
        );
        assert_eq!(
            difference(<(u32,)>::LAYOUT, &region),
            "the region's type has a field `1` (u8 at offset 4) that this one does not"
        );
        assert_eq!(
            difference(<(u32, u8, u8)>::LAYOUT, &region),
            "field `2` (u8 at offset 5) is not in the region's type"
        );
        assert!(difference(u32::LAYOUT, &[]).contains("no readable description"));
    }
}
