//! A typed view of the struct `#[shared_locked]` is applied to: its arguments, its `repr`, and
//! each field's markers. Malformed markers are reported here; what they name is checked in
//! `check.rs`. The view is built even when there are errors, for the fallback expansion.

use proc_macro2::TokenStream;
use quote::quote;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Attribute, Data, DeriveInput, Fields, Ident, Meta, Token, Type, Visibility};

use crate::ctxt::Ctxt;
use crate::msg::{self, fill};
use crate::types::is_named;

/// The markers `#[shared_locked]` reads on fields (and strips from the output).
pub(crate) const MARKERS: &[&str] = &[
    "guarded_by",
    "striped_by",
    "standalone",
    "lock",
    "lock_set",
    "rw_lock",
    "rw_lock_set",
];

pub(crate) struct Input<'a> {
    pub(crate) item: &'a DeriveInput,
    /// `crate = "path"`, or `::lockkit`.
    pub(crate) krate: TokenStream,
    /// `crate = "path"` was given.
    pub(crate) krate_given: bool,
    /// `no_new`: generate no constructor.
    pub(crate) no_new: bool,
    /// The struct's attributes, without its `repr`s, a second `#[shared_locked]` and
    /// `ShmSafe` in a derive (both reported).
    pub(crate) attrs: Vec<Attribute>,
    /// `repr` hints kept beside `repr(C)` (`align(N)`).
    pub(crate) reprs: Vec<TokenStream>,
    pub(crate) fields: Vec<Field<'a>>,
    /// A marker could not be read: which lock it meant is unknown, so "guards no field" is
    /// not reported (it would be a second error for one mistake).
    pub(crate) malformed: bool,
}

/// What a field is, from its type's name or its marker.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `GenLock`, or marked `#[lock]`.
    Lock,
    /// `GenLockSet<N>`, or marked `#[lock_set]`.
    LockSet,
    /// `GenRwLock`, or marked `#[rw_lock]`.
    RwLock,
    /// `GenRwLockSet<N>`, or marked `#[rw_lock_set]`.
    RwLockSet,
    Data,
}

impl Kind {
    /// A single lock (exclusive or reader-writer): what `#[guarded_by]` names.
    pub(crate) fn is_single(self) -> bool {
        matches!(self, Kind::Lock | Kind::RwLock)
    }

    /// A lock set (exclusive or reader-writer): what `#[striped_by]` names.
    pub(crate) fn is_set(self) -> bool {
        matches!(self, Kind::LockSet | Kind::RwLockSet)
    }

    /// A reader-writer lock or set: its fields are read or written, not locked.
    pub(crate) fn is_rw(self) -> bool {
        matches!(self, Kind::RwLock | Kind::RwLockSet)
    }

    /// The marker that marks a lock of this kind written under another name.
    pub(crate) fn marker(self) -> &'static str {
        match self {
            Kind::Lock => "lock",
            Kind::LockSet => "lock_set",
            Kind::RwLock => "rw_lock",
            Kind::RwLockSet => "rw_lock_set",
            Kind::Data => "",
        }
    }
}

pub(crate) struct Field<'a> {
    /// The field's attributes, without lockkit's markers (`#[cfg]`s included).
    pub(crate) attrs: Vec<&'a Attribute>,
    /// Its `#[cfg(..)]` attributes, repeated wherever the field is named (`new`, inits).
    pub(crate) cfgs: Vec<&'a Attribute>,
    pub(crate) vis: &'a Visibility,
    pub(crate) ident: &'a Ident,
    pub(crate) ty: &'a Type,
    pub(crate) role: Role,
    pub(crate) kind: Kind,
    /// `#[standalone]`: a lock used on its own, guarding no field.
    pub(crate) standalone: Option<&'a Attribute>,
    /// `#[lock]`, `#[lock_set]`, `#[rw_lock]` or `#[rw_lock_set]`.
    pub(crate) kind_marker: Option<&'a Attribute>,
}

pub(crate) enum Role {
    Plain,
    /// `#[guarded_by(lock)]`
    Guarded(Ident),
    /// `#[striped_by(set)]`
    Striped(Ident),
}

fn marker_name(attr: &Attribute) -> String {
    attr.path()
        .get_ident()
        .map(Ident::to_string)
        .unwrap_or_default()
}

fn marker_arg(attr: &Attribute, cx: &mut Ctxt) -> Option<Ident> {
    match attr.parse_args_with(any_ident) {
        Ok(id) => Some(id),
        Err(_) => {
            let marker = marker_name(attr);
            cx.error(attr, fill(msg::SL_MARKER_ARG, &[("marker", &marker)]));
            None
        }
    }
}

/// One field name; raw identifiers (`r#loop`) included.
fn any_ident(input: syn::parse::ParseStream) -> syn::Result<Ident> {
    let id: Ident = syn::ext::IdentExt::parse_any(input)?;
    if !input.is_empty() {
        return Err(input.error("one field name"));
    }
    Ok(id)
}

/// A `#[cfg_attr(pred, ..)]` that hides one of lockkit's markers.
fn hidden_marker(attr: &Attribute) -> Option<&'static str> {
    if !attr.path().is_ident("cfg_attr") {
        return None;
    }
    let Meta::List(list) = &attr.meta else {
        return None;
    };
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated
        .parse2(list.tokens.clone())
        .ok()?;
    metas
        .iter()
        .skip(1)
        .find_map(|m| MARKERS.iter().copied().find(|k| m.path().is_ident(k)))
}

fn parse_args(args: TokenStream, cx: &mut Ctxt) -> (Option<TokenStream>, bool) {
    let metas = match Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args) {
        Ok(m) => m,
        Err(e) => {
            cx.push(e);
            return (None, false);
        }
    };
    let (mut krate, mut no_new) = (None, false);
    for meta in &metas {
        match meta {
            Meta::NameValue(nv) if nv.path.is_ident("crate") => {
                if krate.is_some() {
                    cx.error(meta, msg::CRATE_TWICE);
                }
                match crate::types::crate_arg(&nv.value) {
                    Ok(k) => krate = Some(k),
                    Err(e) => cx.push(e),
                }
            }
            Meta::Path(p) if p.is_ident("no_new") => no_new = true,
            _ => cx.error(meta, msg::SL_ARG),
        }
    }
    (krate, no_new)
}

/// Whether `attr` is `#[shared_locked]` (however its path is written).
pub(crate) fn is_shared_locked(attr: &Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|s| s.ident == "shared_locked")
}

/// `attr` without `ShmSafe` if it is a derive that names it (`None` if nothing is left), and
/// where it named it.
pub(crate) fn without_derived_shm_safe(attr: &Attribute) -> (Option<Attribute>, Option<syn::Path>) {
    if !attr.path().is_ident("derive") {
        return (Some(attr.clone()), None);
    }
    let Ok(paths) = attr.parse_args_with(Punctuated::<syn::Path, Token![,]>::parse_terminated)
    else {
        return (Some(attr.clone()), None);
    };
    let is_shm_safe = |p: &syn::Path| p.segments.last().is_some_and(|s| s.ident == "ShmSafe");
    let Some(found) = paths.iter().find(|p| is_shm_safe(p)).cloned() else {
        return (Some(attr.clone()), None);
    };
    let rest: Vec<_> = paths.iter().filter(|p| !is_shm_safe(p)).collect();
    if rest.is_empty() {
        return (None, Some(found));
    }
    let mut attr = attr.clone();
    if let Meta::List(list) = &mut attr.meta {
        list.tokens = quote!(#(#rest),*);
    }
    (Some(attr), Some(found))
}

/// Splits the struct's `repr` attributes: `C` is implied, `align(N)` is kept, anything else
/// (packed, transparent, an integer) is an error. A second `#[shared_locked]` and `ShmSafe`
/// in a derive are reported and left out.
fn reprs(item: &DeriveInput, cx: &mut Ctxt) -> (Vec<Attribute>, Vec<TokenStream>) {
    let mut attrs = Vec::new();
    let mut kept = Vec::new();
    for a in &item.attrs {
        if is_shared_locked(a) {
            cx.error(a, msg::SL_TWICE);
            continue;
        }
        if !a.path().is_ident("repr") {
            let (a, shm_safe) = without_derived_shm_safe(a);
            if let Some(p) = shm_safe {
                cx.error(p, msg::SL_DERIVE_SHM_SAFE);
            }
            attrs.extend(a);
            continue;
        }
        let Ok(hints) = a.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated) else {
            attrs.push(a.clone());
            continue;
        };
        for h in hints {
            if h.path().is_ident("C") {
            } else if h.path().is_ident("align") {
                kept.push(quote!(#h));
            } else {
                let repr = crate::types::tokens_text(&h);
                cx.error(&h, fill(msg::SL_REPR, &[("repr", &repr)]));
            }
        }
    }
    (attrs, kept)
}

impl<'a> Input<'a> {
    /// The struct as read, and every error found reading it.
    pub(crate) fn from_syn(args: TokenStream, item: &'a DeriveInput, cx: &mut Ctxt) -> Input<'a> {
        let (krate, no_new) = parse_args(args, cx);
        let named = match &item.data {
            Data::Struct(s) => match &s.fields {
                Fields::Named(n) => Some(n),
                _ => {
                    cx.error(&item.ident, msg::SL_TUPLE);
                    None
                }
            },
            Data::Enum(e) => {
                cx.error(e.enum_token, msg::SL_ENUM);
                None
            }
            Data::Union(u) => {
                cx.error(u.union_token, msg::SL_UNION);
                None
            }
        };
        if !item.generics.params.is_empty() {
            cx.error(&item.generics, msg::SL_GENERIC);
        }
        let (attrs, reprs) = reprs(item, cx);
        let mut fields = Vec::new();
        let mut malformed = false;
        for f in named.into_iter().flat_map(|n| n.named.iter()) {
            fields.push(field(f, cx, &mut malformed));
        }
        Input {
            item,
            krate_given: krate.is_some(),
            krate: krate.unwrap_or_else(|| quote!(::lockkit)),
            no_new,
            attrs,
            reprs,
            fields,
            malformed,
        }
    }

    /// The field called `name` (`r#loop` and `loop` are one name).
    pub(crate) fn field(&self, name: &Ident) -> Option<&Field<'a>> {
        self.fields.iter().find(|f| same_name(f.ident, name))
    }
}

fn field<'a>(f: &'a syn::Field, cx: &mut Ctxt, malformed: &mut bool) -> Field<'a> {
    let mut role = Role::Plain;
    let mut standalone = None;
    let mut kind_marker: Option<&Attribute> = None;
    let mut attrs = Vec::new();
    let mut cfgs = Vec::new();
    for attr in &f.attrs {
        let p = attr.path();
        let mut marker = MARKERS.iter().copied().find(|m| p.is_ident(m));
        if marker.is_none() && p.segments.len() > 1 {
            // `#[lockkit::guarded_by(..)]`: meant as the marker, so taken as it (no second
            // error about the lock it names), and reported.
            let last = &p.segments.last().expect("a path has a segment").ident;
            if let Some(m) = MARKERS.iter().copied().find(|m| last == m) {
                cx.error(p, fill(msg::SL_MARKER_WITH_PATH, &[("marker", &m)]));
                marker = Some(m);
            }
        }
        match marker {
            Some(m @ ("guarded_by" | "striped_by")) => {
                let Some(target) = marker_arg(attr, cx) else {
                    *malformed = true;
                    continue;
                };
                if !matches!(role, Role::Plain) {
                    cx.error(attr, msg::SL_TWO_ROLES);
                    // The lock it names is meant to guard something: not "guards no field".
                    *malformed = true;
                    continue;
                }
                role = if m == "guarded_by" {
                    Role::Guarded(target)
                } else {
                    Role::Striped(target)
                };
            }
            Some(m) => {
                if attr.meta.require_path_only().is_err() {
                    // Still taken as given: what it marks is clear, only its form is wrong.
                    cx.error(attr, fill(msg::SL_MARKER_PATH, &[("marker", &m)]));
                }
                let slot = if m == "standalone" {
                    &mut standalone
                } else {
                    &mut kind_marker
                };
                if slot.is_some() {
                    cx.error(attr, fill(msg::SL_MARKER_TWICE, &[("marker", &m)]));
                }
                *slot = Some(attr);
            }
            None => {
                if let Some(m) = hidden_marker(attr) {
                    cx.error(attr, fill(msg::SL_CFG_ATTR, &[("marker", &m)]));
                    *malformed = true;
                    continue;
                }
                if p.is_ident("cfg") {
                    cfgs.push(attr);
                }
                attrs.push(attr);
            }
        }
    }
    let kind = match kind_marker {
        Some(a) if a.path().is_ident("lock") => Kind::Lock,
        Some(a) if a.path().is_ident("rw_lock") => Kind::RwLock,
        Some(a) if a.path().is_ident("rw_lock_set") => Kind::RwLockSet,
        Some(_) => Kind::LockSet,
        None if is_named(&f.ty, "GenLock") => Kind::Lock,
        None if is_named(&f.ty, "GenLockSet") => Kind::LockSet,
        None if is_named(&f.ty, "GenRwLock") => Kind::RwLock,
        None if is_named(&f.ty, "GenRwLockSet") => Kind::RwLockSet,
        None => Kind::Data,
    };
    Field {
        attrs,
        cfgs,
        vis: &f.vis,
        ident: f.ident.as_ref().expect("named field"),
        ty: &f.ty,
        role,
        kind,
        standalone,
        kind_marker,
    }
}

/// Whether two identifiers name the same field, raw or not.
pub(crate) fn same_name(a: &Ident, b: &Ident) -> bool {
    use syn::ext::IdentExt;
    a.unraw() == b.unraw()
}
