//! Reading types as written: which are locks, which can never live in shared memory, and how
//! to print them in messages.
//!
//! These are syntactic checks, made for their error messages; the generated code also
//! asserts `ShmSafe` on every field, which catches what syntax cannot (type aliases, user
//! types), and which is the only check for names a user type may share with a std type.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::{GenericArgument, PathArguments, Type};

/// The last segment's name of a path type (`lockkit::GenLock` → `GenLock`).
pub(crate) fn last_ident(ty: &Type) -> Option<String> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().map(|s| s.ident.to_string()),
        Type::Group(g) => last_ident(&g.elem),
        Type::Paren(p) => last_ident(&p.elem),
        _ => None,
    }
}

pub(crate) fn is_named(ty: &Type, name: &str) -> bool {
    last_ident(ty).as_deref() == Some(name)
}

/// A type as the user wrote it (`std::cell::Cell<*const u8>`), not as tokens print
/// (`std :: cell :: Cell < * const u8 >`).
/// (A type's span is its first token on stable Rust, so its source text cannot be asked
/// for; the tokens are printed and their spacing tidied instead.)
pub(crate) fn type_name(ty: &Type) -> String {
    let s = ty.to_token_stream().to_string();
    s.replace(" :: ", "::")
        .replace(":: ", "::")
        .replace(" < ", "<")
        .replace("< ", "<")
        .replace(" >", ">")
        .replace(" ;", ";")
        .replace(" ,", ",")
        .replace("& ", "&")
        .replace("* const ", "*const ")
        .replace("* mut ", "*mut ")
}

/// The value of `crate = "path"`.
pub(crate) fn crate_arg(value: &syn::Expr) -> syn::Result<TokenStream> {
    match value {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(s),
            ..
        }) => crate::ctxt::crate_path(s),
        other => Err(syn::Error::new_spanned(other, crate::msg::CRATE_PATH)),
    }
}

/// Why a type cannot live in shared memory, read from its name: each kind has its own
/// assertion in `lockkit::__private` whose message says what to use instead. The assertion
/// holds for every `ShmSafe` type, so a user type that happens to be called `String` passes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum NonShm {
    /// `&T`: rejected here (never ShmSafe, and no user type can be called `&`).
    Reference,
    /// `*const T`, `*mut T`: rejected here.
    Pointer,
    /// `String`, `OsString`, `PathBuf`, `CString`.
    HeapString,
    /// `Vec`, `HashMap` and the other collections.
    HeapCollection,
    /// `Box`.
    HeapBox,
    /// `Rc`, `Arc`, `Weak`.
    RefCounted,
    /// `Cell`, `RefCell`, `UnsafeCell`.
    UnsyncCell,
}

impl NonShm {
    /// The function of `lockkit::__private` that asserts the field is `ShmSafe` with this
    /// kind's message.
    pub(crate) fn assertion(self) -> &'static str {
        match self {
            NonShm::Reference | NonShm::Pointer => "assert_shm_safe",
            NonShm::HeapString => "assert_shm_safe_not_string",
            NonShm::HeapCollection => "assert_shm_safe_not_collection",
            NonShm::HeapBox => "assert_shm_safe_not_box",
            NonShm::RefCounted => "assert_shm_safe_not_rc",
            NonShm::UnsyncCell => "assert_shm_safe_not_cell",
        }
    }
}

/// The assertion that `ty` can live in shared memory, with the message its written type
/// suggests; `None` for references and pointers, which the macros reject themselves.
///
/// When the suspect is inside the field's type (`Option<Vec<u8>>`, `[String; 4]`), the
/// suspect is what is asserted, at its own tokens: asserting the whole type would report the
/// innermost failing obligation (`Vec<u8>: ShmSafe`) with the generic message. The whole
/// type is then checked only if the suspect turns out to be `ShmSafe` (a user type named
/// `String` inside a type that is not): a second error for the same mistake otherwise.
pub(crate) fn shm_assertion(krate: &TokenStream, ty: &Type) -> Option<TokenStream> {
    use quote::quote_spanned;
    use syn::spanned::Spanned;
    let (asserted, assertion) = match non_shm(ty) {
        Some((_, NonShm::Reference | NonShm::Pointer)) => return None,
        Some((bad, kind)) => (bad, kind.assertion()),
        None => (ty, "assert_shm_safe"),
    };
    let span = asserted.span();
    let krate = crate::ctxt::respan(krate.clone(), span);
    let assertion = syn::Ident::new(assertion, span);
    let mut out = quote_spanned! {span=>
        const _: () = #krate::__private::Checked::#assertion::<#asserted>();
    };
    // The suspect is only a part: if it turns out to be ShmSafe (a user type named like a
    // std one), the whole type must still be. Checked without a second error when the
    // suspect is not (see `assert_whole_field`).
    if !std::ptr::eq(asserted, ty) {
        let whole_span = ty.span();
        // The probe is local, so it asks lockkit's own trait whatever `krate` names.
        out.extend(quote_spanned! {whole_span=>
            const _: () = {
                struct __LkProbe<T: ?::core::marker::Sized>(::core::marker::PhantomData<T>);
                impl<T: #krate::ShmSafe> __LkProbe<T> {
                    const IS_SHM_SAFE: bool = true;
                }
                trait __LkNotShmSafe {
                    const IS_SHM_SAFE: bool = false;
                }
                impl<T: ?::core::marker::Sized> __LkNotShmSafe for __LkProbe<T> {}
                #krate::__private::Checked::assert_whole_field(
                    __LkProbe::<#asserted>::IS_SHM_SAFE,
                    __LkProbe::<#ty>::IS_SHM_SAFE,
                )
            };
        });
    }
    Some(out)
}

/// The first part of `ty` (outermost first) that looks as if it cannot live in shared
/// memory, and why.
pub(crate) fn non_shm(ty: &Type) -> Option<(&Type, NonShm)> {
    match ty {
        Type::Reference(_) => Some((ty, NonShm::Reference)),
        Type::Ptr(_) => Some((ty, NonShm::Pointer)),
        Type::Array(a) => non_shm(&a.elem),
        Type::Tuple(t) => t.elems.iter().find_map(non_shm),
        Type::Group(g) => non_shm(&g.elem),
        Type::Paren(p) => non_shm(&p.elem),
        Type::Path(p) => {
            let seg = p.path.segments.last()?;
            let kind = match seg.ident.to_string().as_str() {
                "String" | "OsString" | "PathBuf" | "CString" => Some(NonShm::HeapString),
                "Vec" | "VecDeque" | "HashMap" | "HashSet" | "BTreeMap" | "BTreeSet"
                | "LinkedList" | "BinaryHeap" => Some(NonShm::HeapCollection),
                "Box" => Some(NonShm::HeapBox),
                "Rc" | "Arc" | "Weak" => Some(NonShm::RefCounted),
                "Cell" | "RefCell" | "UnsafeCell" => Some(NonShm::UnsyncCell),
                _ => None,
            };
            if let Some(k) = kind {
                return Some((ty, k));
            }
            match &seg.arguments {
                PathArguments::AngleBracketed(args) => args.args.iter().find_map(|a| match a {
                    GenericArgument::Type(t) => non_shm(t),
                    _ => None,
                }),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The first path segment called `name` anywhere in `ty` (`Option<Arc<GrpLock>>`,
/// `[lockkit::grp::GrpLock; 2]`), by name as written.
pub(crate) fn find_named<'t>(ty: &'t Type, name: &str) -> Option<&'t syn::PathSegment> {
    match ty {
        Type::Path(p) => {
            let in_qself = p.qself.as_ref().and_then(|q| find_named(&q.ty, name));
            in_qself.or_else(|| {
                p.path.segments.iter().find_map(|seg| {
                    if seg.ident == name {
                        return Some(seg);
                    }
                    match &seg.arguments {
                        PathArguments::AngleBracketed(args) => {
                            args.args.iter().find_map(|a| match a {
                                GenericArgument::Type(t) => find_named(t, name),
                                _ => None,
                            })
                        }
                        _ => None,
                    }
                })
            })
        }
        Type::Array(a) => find_named(&a.elem, name),
        Type::Slice(a) => find_named(&a.elem, name),
        Type::Reference(r) => find_named(&r.elem, name),
        Type::Ptr(r) => find_named(&r.elem, name),
        Type::Tuple(t) => t.elems.iter().find_map(|e| find_named(e, name)),
        Type::Group(g) => find_named(&g.elem, name),
        Type::Paren(p) => find_named(&p.elem, name),
        _ => None,
    }
}

/// Tokens printed for a message, their spacing tidied as for types.
pub(crate) fn tokens_text(t: &impl ToTokens) -> String {
    t.to_token_stream()
        .to_string()
        .replace(" (", "(")
        .replace("( ", "(")
        .replace(" )", ")")
}

/// Proves, at compile time, that `krate::__private::Checked` (through which generated code
/// reaches every check its `unsafe impl`s stand on) is lockkit's own type: `ShmSafe`'s
/// hidden function takes exactly that type. A `crate = ".."` naming a crate that supplies
/// look-alike checks (one that names itself with `extern crate self as ..`) fails here.
pub(crate) fn checks_are_lockkits(krate: &TokenStream) -> TokenStream {
    quote::quote! {
        const _: fn(#krate::__private::Checked) = <() as #krate::ShmSafe>::__lockkit_checks;
    }
}

/// Proves, as [`checks_are_lockkits`] does for the checks, that the wrapper a generated field
/// is stored in (`wrapper`, a path through `krate`) is lockkit's own for exactly the type
/// arguments used (`is`, `Checked::is_striped` or `is_shm_mutex`, takes lockkit's type): the
/// struct's `unsafe impl`s rely on it. Per field, not once: an alias can pick another type
/// for each argument.
pub(crate) fn wrapper_is_lockkits(
    krate: &TokenStream,
    cfgs: &[&syn::Attribute],
    wrapper: &TokenStream,
    is: &str,
    args: &TokenStream,
) -> TokenStream {
    let is = syn::Ident::new(is, proc_macro2::Span::call_site());
    quote::quote! {
        #(#cfgs)*
        const _: fn(&#wrapper) = #krate::__private::Checked::#is::<#args>;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_printed_as_written() {
        let cases = [
            ("std::cell::Cell<*const u8>", "std::cell::Cell<*const u8>"),
            ("&'static str", "&'static str"),
            ("[u32; 16]", "[u32; 16]"),
            ("Option<Vec<u8>>", "Option<Vec<u8>>"),
            ("HashMap<u32, *mut u8>", "HashMap<u32, *mut u8>"),
            ("::lockkit::GenLockSet<4>", "::lockkit::GenLockSet<4>"),
        ];
        for (src, want) in cases {
            let ty: Type = syn::parse_str(src).unwrap();
            assert_eq!(type_name(&ty), want, "{src}");
        }
    }

    #[test]
    fn the_reason_is_read_from_the_outermost_suspicious_name() {
        let kind = |s: &str| non_shm(&syn::parse_str::<Type>(s).unwrap()).map(|(_, k)| k);
        assert_eq!(kind("Option<Vec<u8>>"), Some(NonShm::HeapCollection));
        assert_eq!(kind("std::cell::Cell<*const u8>"), Some(NonShm::UnsyncCell));
        assert_eq!(kind("[&'static u8; 2]"), Some(NonShm::Reference));
        assert_eq!(kind("(u8, *mut u8)"), Some(NonShm::Pointer));
        assert_eq!(kind("user::Text"), None);
    }

    #[test]
    fn a_name_is_found_anywhere_in_a_type() {
        let found = |s: &str| find_named(&syn::parse_str::<Type>(s).unwrap(), "GrpLock").is_some();
        assert!(found("GrpLock"));
        assert!(found("Option<std::sync::Arc<lockkit::grp::GrpLock>>"));
        assert!(found("[(u8, GrpLock); 2]"));
        assert!(!found("WeakGrpLock"));
        assert!(!found("Option<WeakGrpLock>"));
    }
}
