//! A typed view of a `#[grp_member]` struct, checked as it is read: one `#[grp]` field of
//! type `WeakGrpLock`, and an optional `on_destroy = method` hook.

use proc_macro2::TokenStream;
use syn::parse::Parser;
use syn::{Data, DeriveInput, Fields, Ident, Meta, Token};

use crate::ctxt::Ctxt;
use crate::types::{is_named, last_ident};

pub(crate) struct Member<'a> {
    pub(crate) item: &'a DeriveInput,
    /// The `#[grp]` field.
    pub(crate) grp: &'a Ident,
    /// `on_destroy = method`; `None` relies on the struct's `Drop`.
    pub(crate) hook: Option<Ident>,
}

fn parse_args(args: TokenStream, cx: &mut Ctxt) -> Option<Ident> {
    let metas = match syn::punctuated::Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args)
    {
        Ok(m) => m,
        Err(e) => {
            cx.push(e);
            return None;
        }
    };
    let mut hook = None;
    for meta in metas {
        match &meta {
            Meta::NameValue(nv) if nv.path.is_ident("on_destroy") => match &nv.value {
                syn::Expr::Path(p) if p.path.get_ident().is_some() && p.qself.is_none() => {
                    if hook.is_some() {
                        cx.error(&meta, "on_destroy is given twice");
                    }
                    hook = p.path.get_ident().cloned();
                }
                other => cx.error(
                    other,
                    "on_destroy names a method of this struct: #[grp_member(on_destroy = finish)]",
                ),
            },
            _ => cx.error(
                &meta,
                "unknown argument: #[grp_member] takes `on_destroy = method`, or nothing to rely \
                 on the struct's Drop",
            ),
        }
    }
    hook
}

impl<'a> Member<'a> {
    pub(crate) fn from_syn(args: TokenStream, item: &'a DeriveInput) -> syn::Result<Member<'a>> {
        let mut cx = Ctxt::default();
        let hook = parse_args(args, &mut cx);
        let fields = match &item.data {
            Data::Struct(s) => match &s.fields {
                Fields::Named(n) => Some(n),
                _ => {
                    cx.error(
                        &item.ident,
                        "#[grp_member] needs a struct with named fields, one of them marked #[grp]",
                    );
                    None
                }
            },
            _ => {
                cx.error(&item.ident, "#[grp_member] applies to structs");
                None
            }
        };
        let mut grp: Option<&Ident> = None;
        for f in fields.into_iter().flat_map(|n| n.named.iter()) {
            let Some(attr) = f.attrs.iter().find(|a| a.path().is_ident("grp")) else {
                continue;
            };
            let ident = f.ident.as_ref().expect("named field");
            if let Err(e) = attr.meta.require_path_only() {
                cx.push(e);
            }
            if let Some(first) = grp {
                cx.error(
                    attr,
                    format!(
                        "a member belongs to one group, and `{first}` is already marked #[grp]: \
                         remove one of the two"
                    ),
                );
                continue;
            }
            if is_named(&f.ty, "GrpLock") {
                cx.error(
                    &f.ty,
                    "a member must not own a GrpLock of its group: the group owns the member \
                     (through its destroy handler), so the member's reference would keep the \
                     group alive forever; declare the field as `WeakGrpLock`",
                );
            } else if !is_named(&f.ty, "WeakGrpLock") {
                cx.error(
                    &f.ty,
                    format!(
                        "the #[grp] field must be a `WeakGrpLock` (found `{}`); `join` fills it in",
                        last_ident(&f.ty).unwrap_or_else(|| "another type".into())
                    ),
                );
            }
            grp = Some(ident);
        }
        if grp.is_none() && fields.is_some() {
            cx.error(
                &item.ident,
                format!(
                    "`{}` has no #[grp] field: mark the field that reaches the group, \
                     `#[grp] group: WeakGrpLock`",
                    item.ident
                ),
            );
        }
        cx.check()?;
        Ok(Member {
            item,
            grp: grp.expect("checked above"),
            hook,
        })
    }
}
