//! Checks the parsed struct: every marker names a lock of the right kind, every lock
//! guards something, every field can live in shared memory.

use super::parse::{Input, Role};
use crate::ctxt::Ctxt;
use crate::types::{is_named, last_ident, non_shm};

pub(crate) fn check(input: &Input) -> syn::Result<()> {
    let mut cx = Ctxt::default();
    let mut bad_marker = false;
    for f in &input.fields {
        match &f.role {
            Role::Plain => {}
            Role::Guarded(lock) => match input.field(lock) {
                Some(l) if is_named(l.ty, "GenLock") => {}
                _ if {
                    bad_marker = true;
                    false
                } => {}
                None => cx.error(
                    lock,
                    format!(
                        "no field named `{lock}` in this struct: #[guarded_by] names the \
                         GenLock field that guards `{}`",
                        f.ident
                    ),
                ),
                Some(l) if !is_named(l.ty, "GenLock") => cx.error(
                    lock,
                    format!(
                        "`{lock}` is not a lock (its type is `{}`): #[guarded_by] must name a \
                         field of type GenLock{}",
                        type_name(l.ty),
                        if is_named(l.ty, "GenLockSet") {
                            "; for a lock set use #[striped_by]"
                        } else {
                            ""
                        }
                    ),
                ),
                Some(_) => {}
            },
            Role::Striped(set) => {
                if !input
                    .field(set)
                    .is_some_and(|s| is_named(s.ty, "GenLockSet"))
                {
                    bad_marker = true;
                }
                match input.field(set) {
                    None => cx.error(
                        set,
                        format!(
                            "no field named `{set}` in this struct: #[striped_by] names the \
                             GenLockSet field whose stripes guard `{}`",
                            f.ident
                        ),
                    ),
                    Some(s) if !is_named(s.ty, "GenLockSet") => cx.error(
                        set,
                        format!(
                            "`{set}` is not a lock set (its type is `{}`): #[striped_by] must \
                             name a field of type GenLockSet<N>",
                            type_name(s.ty)
                        ),
                    ),
                    Some(_) => {}
                }
                if !matches!(f.ty, syn::Type::Array(_)) {
                    cx.error(
                        f.ty,
                        "a #[striped_by] field must be an array `[T; M]`: element i is \
                         guarded by stripe i % N",
                    );
                }
            }
        }
        if f.standalone.is_some() && !matches!(f.role, Role::Plain) {
            cx.error(f.ident, "#[standalone] marks a lock, not a guarded field");
        }
        if let Some((bad, why)) = non_shm(f.ty) {
            cx.error(
                bad,
                format!("`{}` cannot live in shared memory: {why}", type_name(bad)),
            );
        }
    }
    for l in &input.fields {
        let kind = if is_named(l.ty, "GenLock") {
            "guarded_by"
        } else if is_named(l.ty, "GenLockSet") {
            "striped_by"
        } else {
            continue;
        };
        let used = input.fields.iter().any(|f| match &f.role {
            Role::Guarded(n) | Role::Striped(n) => n == l.ident,
            Role::Plain => false,
        });
        // A lock whose marker had a typo would be reported twice; the typo is the news.
        if !used && l.standalone.is_none() && !bad_marker {
            cx.error(
                l.ident,
                format!(
                    "lock `{0}` guards no field: mark the fields it guards with \
                     #[{kind}({0})], or mark it #[standalone] if it is used on its own",
                    l.ident
                ),
            );
        }
        if used && l.standalone.is_some() {
            cx.error(
                l.ident,
                format!(
                    "lock `{}` is marked #[standalone] but guards fields",
                    l.ident
                ),
            );
        }
    }
    cx.check()
}

fn type_name(ty: &syn::Type) -> String {
    let s = quote::quote!(#ty).to_string();
    if s.len() > 40 {
        last_ident(ty).unwrap_or(s)
    } else {
        s.replace(" < ", "<")
            .replace(" >", ">")
            .replace(" ;", ";")
            .replace("& ", "&")
    }
}
