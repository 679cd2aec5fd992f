//! A typed view of a `#[grp_member]` struct, checked as it is read: one `#[grp]` field of
//! type `WeakGrpLock`, an optional `on_destroy = method` hook, an optional `crate = "path"`.

use proc_macro2::TokenStream;
use syn::parse::Parser;
use syn::{Data, DeriveInput, Fields, Ident, Meta, Token};

use crate::ctxt::Ctxt;
use crate::msg::{self, fill};
use crate::types::{find_named, is_named, type_name};

/// The marker of a field that holds a strong reference to another group than the member's.
pub(crate) const OTHER_GROUP: &str = "other_group";

pub(crate) struct Member<'a> {
    pub(crate) item: &'a DeriveInput,
    /// The `#[grp]` field, if one was found.
    pub(crate) grp: Option<&'a Ident>,
    /// `on_destroy = method`; `None` relies on the struct's `Drop`.
    pub(crate) hook: Option<Ident>,
    /// The path generated code reaches lockkit through.
    pub(crate) krate: TokenStream,
}

fn parse_args(args: TokenStream, cx: &mut Ctxt) -> (Option<Ident>, Option<TokenStream>) {
    let metas = match syn::punctuated::Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args)
    {
        Ok(m) => m,
        Err(e) => {
            cx.push(e);
            return (None, None);
        }
    };
    let mut hook = None;
    let mut krate = None;
    for meta in metas {
        match &meta {
            Meta::NameValue(nv) if nv.path.is_ident("on_destroy") => match &nv.value {
                syn::Expr::Path(p) if p.path.get_ident().is_some() && p.qself.is_none() => {
                    if hook.is_some() {
                        cx.error(&meta, msg::GM_HOOK_TWICE);
                    }
                    hook = p.path.get_ident().cloned();
                }
                other => cx.error(other, msg::GM_HOOK_PATH),
            },
            Meta::NameValue(nv) if nv.path.is_ident("crate") => {
                if krate.is_some() {
                    cx.error(&meta, msg::CRATE_TWICE);
                }
                match crate::types::crate_arg(&nv.value) {
                    Ok(k) => krate = Some(k),
                    Err(e) => cx.push(e),
                }
            }
            _ => cx.error(&meta, msg::GM_ARG),
        }
    }
    (hook, krate)
}

impl<'a> Member<'a> {
    /// The member as read, and the errors found (the member is still usable for a fallback
    /// expansion when there are errors).
    pub(crate) fn from_syn(args: TokenStream, item: &'a DeriveInput) -> (Member<'a>, Ctxt) {
        let mut cx = Ctxt::new();
        let (hook, krate) = parse_args(args, &mut cx);
        let fields = match &item.data {
            Data::Struct(s) => match &s.fields {
                Fields::Named(n) => Some(n),
                _ => {
                    cx.error(&item.ident, msg::GM_NOT_STRUCT);
                    None
                }
            },
            _ => {
                cx.error(&item.ident, msg::GM_NOT_STRUCT);
                None
            }
        };
        if let Some(l) = item.generics.lifetimes().next() {
            cx.error(l, msg::GM_LIFETIME);
        }
        let mut grp: Option<&Ident> = None;
        for f in fields.into_iter().flat_map(|n| n.named.iter()) {
            let ident = f.ident.as_ref().expect("named field");
            let Some(attr) = f.attrs.iter().find(|a| a.path().is_ident("grp")) else {
                // A strong reference kept beside the #[grp] field: a cycle if it is the own
                // group, which only the user can tell (#[other_group]).
                let other = f.attrs.iter().any(|a| a.path().is_ident(OTHER_GROUP));
                if let (false, Some(seg)) = (other, find_named(&f.ty, "GrpLock")) {
                    cx.error(&seg.ident, fill(msg::GM_STRONG_FIELD, &[("field", ident)]));
                }
                continue;
            };
            if attr.meta.require_path_only().is_err() {
                cx.error(attr, msg::GM_GRP_PATH);
            }
            if let Some(first) = grp {
                cx.error(attr, fill(msg::GM_GRP_TWICE, &[("first", first)]));
                continue;
            }
            if is_named(&f.ty, "GrpLock") {
                cx.error(&f.ty, msg::GM_OWNS_GROUP);
            } else if !is_named(&f.ty, "WeakGrpLock") {
                cx.error(&f.ty, fill(msg::GM_GRP_TYPE, &[("ty", &type_name(&f.ty))]));
            }
            grp = Some(ident);
        }
        if grp.is_none() && fields.is_some() {
            cx.error(&item.ident, fill(msg::GM_NO_GRP, &[("name", &item.ident)]));
        }
        let member = Member {
            item,
            grp,
            hook,
            krate: krate.unwrap_or_else(|| quote::quote!(::lockkit)),
        };
        (member, cx)
    }
}
