//! A typed view of the struct `#[shared_locked]` is applied to.

use proc_macro2::TokenStream;
use syn::{Attribute, Data, DeriveInput, Fields, Ident, Type, Visibility};

use crate::ctxt::Ctxt;

pub(crate) struct Input<'a> {
    pub(crate) item: &'a DeriveInput,
    pub(crate) fields: Vec<Field<'a>>,
}

pub(crate) struct Field<'a> {
    /// The field's attributes, without lockkit's markers.
    pub(crate) attrs: Vec<&'a Attribute>,
    pub(crate) vis: &'a Visibility,
    pub(crate) ident: &'a Ident,
    pub(crate) ty: &'a Type,
    pub(crate) role: Role,
    /// `#[standalone]`: a lock used on its own, guarding no field.
    pub(crate) standalone: Option<&'a Attribute>,
}

pub(crate) enum Role {
    Plain,
    /// `#[guarded_by(lock)]`
    Guarded(Ident),
    /// `#[striped_by(set)]`
    Striped(Ident),
}

fn marker_arg(attr: &Attribute, cx: &mut Ctxt) -> Option<Ident> {
    match attr.parse_args::<Ident>() {
        Ok(id) => Some(id),
        Err(_) => {
            let name = attr
                .path()
                .get_ident()
                .map(Ident::to_string)
                .unwrap_or_default();
            cx.error(
                attr,
                format!("expected #[{name}(field)], naming the lock field of this struct"),
            );
            None
        }
    }
}

impl<'a> Input<'a> {
    pub(crate) fn from_syn(args: TokenStream, item: &'a DeriveInput) -> syn::Result<Input<'a>> {
        let mut cx = Ctxt::default();
        if !args.is_empty() {
            cx.error(&args, "#[shared_locked] takes no arguments");
        }
        let named = match &item.data {
            Data::Struct(s) => match &s.fields {
                Fields::Named(n) => Some(n),
                _ => {
                    cx.error(
                        &item.ident,
                        "#[shared_locked] needs a struct with named fields: the locks and \
                         the fields they guard refer to each other by name",
                    );
                    None
                }
            },
            Data::Enum(e) => {
                cx.error(
                    e.enum_token,
                    "#[shared_locked] applies to structs, not enums: a lock cannot guard a \
                     variant that may not exist; put the enum inside a guarded field",
                );
                None
            }
            Data::Union(u) => {
                cx.error(
                    u.union_token,
                    "#[shared_locked] applies to structs, not unions: a union cannot say which \
                     of its fields a lock guards",
                );
                None
            }
        };
        if !item.generics.params.is_empty() {
            cx.error(
                &item.generics,
                "#[shared_locked] does not support generic parameters: every process must \
                 agree on one layout; write the struct with concrete types",
            );
        }
        let mut fields = Vec::new();
        for f in named.into_iter().flat_map(|n| n.named.iter()) {
            let mut role = Role::Plain;
            let mut standalone = None;
            let mut attrs = Vec::new();
            for attr in &f.attrs {
                let p = attr.path();
                let new_role = if p.is_ident("guarded_by") {
                    marker_arg(attr, &mut cx).map(Role::Guarded)
                } else if p.is_ident("striped_by") {
                    marker_arg(attr, &mut cx).map(Role::Striped)
                } else {
                    if p.is_ident("standalone") {
                        if let Err(e) = attr.meta.require_path_only() {
                            cx.push(e);
                        }
                        standalone = Some(attr);
                    } else {
                        attrs.push(attr);
                    }
                    continue;
                };
                if let Some(r) = new_role {
                    if !matches!(role, Role::Plain) {
                        cx.error(
                            attr,
                            "a field is guarded by one lock: remove the second \
                             #[guarded_by]/#[striped_by]",
                        );
                    }
                    role = r;
                }
            }
            fields.push(Field {
                attrs,
                vis: &f.vis,
                ident: f.ident.as_ref().expect("named field"),
                ty: &f.ty,
                role,
                standalone,
            });
        }
        cx.check()?;
        Ok(Input { item, fields })
    }

    pub(crate) fn field(&self, name: &Ident) -> Option<&Field<'a>> {
        self.fields.iter().find(|f| f.ident == name)
    }
}
