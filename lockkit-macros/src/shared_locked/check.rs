//! Checks the parsed struct: every marker names a lock of the right kind, every lock guards
//! something, every field can live in shared memory (as far as its written type tells), and
//! the names the expansion makes do not clash.

use super::expand::fields_struct_name;
use super::parse::{same_name, Input, Kind, Role};
use crate::ctxt::Ctxt;
use crate::msg::{self, fill};
use crate::types::{non_shm, type_name, NonShm};

pub(crate) fn check(input: &Input, cx: &mut Ctxt) {
    // A marker that names no lock of its kind: the locks it meant would be reported as
    // guarding nothing, a second error for one typo.
    let mut bad_marker = input.malformed;
    for f in &input.fields {
        let field = f.ident;
        match &f.role {
            Role::Plain => {}
            Role::Guarded(lock) => {
                let target = input.field(lock);
                let err = match target {
                    _ if same_name(lock, f.ident) => {
                        Some(fill(msg::SL_GUARD_SELF, &[("field", field)]))
                    }
                    None => Some(fill(
                        msg::SL_GUARD_MISSING,
                        &[("lock", lock), ("field", field)],
                    )),
                    Some(l) if l.kind.is_set() => Some(fill(msg::SL_GUARD_SET, &[("lock", lock)])),
                    Some(l) if l.kind == Kind::Data => Some(fill(
                        msg::SL_GUARD_NOT_LOCK,
                        &[("lock", lock), ("ty", &type_name(l.ty))],
                    )),
                    Some(l) => match &l.role {
                        Role::Guarded(outer) | Role::Striped(outer) => Some(fill(
                            msg::SL_GUARD_GUARDED,
                            &[("lock", lock), ("outer", outer), ("field", field)],
                        )),
                        Role::Plain => None,
                    },
                };
                if let Some(e) = err {
                    bad_marker = true;
                    cx.error(lock, e);
                }
            }
            Role::Striped(set) => {
                let err = match input.field(set) {
                    None => Some(fill(
                        msg::SL_STRIPE_MISSING,
                        &[("set", set), ("field", field)],
                    )),
                    Some(s) if s.kind.is_single() => {
                        Some(fill(msg::SL_STRIPE_LOCK, &[("set", set)]))
                    }
                    Some(s) if s.kind == Kind::Data => Some(fill(
                        msg::SL_STRIPE_NOT_SET,
                        &[("set", set), ("ty", &type_name(s.ty))],
                    )),
                    Some(s) => match &s.role {
                        Role::Guarded(outer) | Role::Striped(outer) => Some(fill(
                            msg::SL_GUARD_GUARDED,
                            &[("lock", set), ("outer", outer), ("field", field)],
                        )),
                        Role::Plain => None,
                    },
                };
                if let Some(e) = err {
                    bad_marker = true;
                    cx.error(set, e);
                }
                // A set striped by another set that fields are striped by: the fields'
                // markers report it ("itself guarded"), once.
                let named_by_marker = input.fields.iter().any(|g| match &g.role {
                    Role::Guarded(n) | Role::Striped(n) => same_name(n, f.ident),
                    Role::Plain => false,
                });
                let reported = f.kind != Kind::Data && named_by_marker;
                if !matches!(f.ty, syn::Type::Array(_)) && !reported {
                    cx.error(f.ty, msg::SL_STRIPE_ARRAY);
                }
            }
        }
        match (&f.role, f.kind) {
            (Role::Plain, Kind::Data) => {
                if let Some(a) = f.standalone {
                    cx.error(
                        a,
                        fill(
                            msg::SL_STANDALONE_NOT_LOCK,
                            &[("field", field), ("ty", &type_name(f.ty))],
                        ),
                    );
                }
            }
            (Role::Plain, _) => {
                if let Some(c) = f.cfgs.first() {
                    cx.error(c, msg::SL_CFG_LOCK);
                }
            }
            (_, kind) => {
                if let Some(a) = f.standalone {
                    cx.error(a, msg::SL_STANDALONE_GUARDED);
                }
                if let Some(a) = f.kind_marker {
                    cx.error(
                        a,
                        fill(
                            msg::SL_KIND_GUARDED,
                            &[("marker", &kind.marker()), ("field", field)],
                        ),
                    );
                }
            }
        }
        match non_shm(f.ty) {
            Some((bad, NonShm::Reference)) => cx.error(bad, msg::SL_REFERENCE),
            Some((bad, NonShm::Pointer)) => cx.error(bad, msg::SL_POINTER),
            _ => {}
        }
    }
    for l in &input.fields {
        let kind = match (l.kind, &l.role) {
            (k, Role::Plain) if k.is_single() => "guarded_by",
            (k, Role::Plain) if k.is_set() => "striped_by",
            _ => continue,
        };
        let used = input.fields.iter().any(|f| match &f.role {
            Role::Guarded(n) | Role::Striped(n) => same_name(n, l.ident),
            Role::Plain => false,
        });
        if !used && l.standalone.is_none() && !bad_marker {
            cx.error(
                l.ident,
                fill(msg::SL_LOCK_UNUSED, &[("lock", l.ident), ("kind", &kind)]),
            );
        }
        if used && l.standalone.is_some() {
            cx.error(l.ident, fill(msg::SL_STANDALONE_USED, &[("lock", l.ident)]));
        }
    }
    // `calls` and `calls_for` both make `try_lock_calls_for`.
    let mut accessors: Vec<(String, &syn::Ident)> = Vec::new();
    for f in &input.fields {
        let rw = match &f.role {
            Role::Striped(set) => input.field(set).is_some_and(|s| s.kind.is_rw()),
            Role::Plain if f.kind.is_single() && guards_any(input, f) => f.kind.is_rw(),
            _ => continue,
        };
        let names = accessor_names(f.ident, rw);
        let clash = names.iter().find_map(|n| {
            accessors
                .iter()
                .find(|(m, other)| m == n && !same_name(other, f.ident))
                .map(|(m, other)| (m.clone(), *other))
        });
        if let Some((name, other)) = clash {
            cx.error(
                f.ident,
                fill(
                    msg::SL_ACCESSOR_CLASH,
                    &[("a", other), ("b", f.ident), ("name", &name)],
                ),
            );
        }
        accessors.extend(names.into_iter().map(|n| (n, f.ident)));
    }
    // `a_b` and `a__b` both make `<Struct>ABFields`.
    let guarding: Vec<_> = input
        .fields
        .iter()
        .filter(|l| l.kind.is_single() && matches!(l.role, Role::Plain))
        .collect();
    for (i, a) in guarding.iter().enumerate() {
        let name = fields_struct_name(input, a.ident);
        if let Some(b) = guarding[..i]
            .iter()
            .find(|b| fields_struct_name(input, b.ident) == name)
        {
            cx.error(
                a.ident,
                fill(
                    msg::SL_NAME_CLASH,
                    &[("a", b.ident), ("b", a.ident), ("name", &name)],
                ),
            );
        }
    }
}

/// The accessors made for a lock or a striped field called `id`; for a reader-writer lock
/// (`rw`), the `read_`/`write_` ones and the `lock_` ones that say to use those.
pub(crate) fn accessor_names(id: &syn::Ident, rw: bool) -> Vec<String> {
    use syn::ext::IdentExt;
    let id = id.unraw();
    let mut names = vec![
        format!("lock_{id}"),
        format!("try_lock_{id}"),
        format!("try_lock_{id}_for"),
    ];
    if rw {
        for side in ["read", "write"] {
            names.push(format!("{side}_{id}"));
            names.push(format!("try_{side}_{id}"));
            names.push(format!("try_{side}_{id}_for"));
        }
    }
    names
}

fn guards_any(input: &Input, lock: &super::parse::Field) -> bool {
    input
        .fields
        .iter()
        .any(|f| matches!(&f.role, Role::Guarded(l) if same_name(l, lock.ident)))
}
