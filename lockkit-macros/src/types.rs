//! Reading types as written: which are locks, and which can never live in shared memory.
//!
//! These are syntactic checks, made for their error messages; the generated code also
//! asserts `ShmSafe` on every field, which catches what syntax cannot (type aliases, user
//! types).

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

/// The innermost type that cannot live in shared memory, and why, if `ty` contains one.
pub(crate) fn non_shm(ty: &Type) -> Option<(&Type, &'static str)> {
    match ty {
        Type::Reference(_) => Some((
            ty,
            "a reference points into this process's memory; store a ShmPtr to a shared \
             object instead",
        )),
        Type::Ptr(_) => Some((
            ty,
            "a raw pointer means nothing in another process, which maps the region at \
             another address; store a ShmPtr instead",
        )),
        Type::Array(a) => non_shm(&a.elem),
        Type::Tuple(t) => t.elems.iter().find_map(non_shm),
        Type::Group(g) => non_shm(&g.elem),
        Type::Paren(p) => non_shm(&p.elem),
        Type::Path(p) => {
            let seg = p.path.segments.last()?;
            let why = match seg.ident.to_string().as_str() {
                "String" | "OsString" | "PathBuf" | "CString" => {
                    "its bytes live on this process's heap; use a fixed-size byte array \
                     ([u8; N]) with a length"
                }
                "Vec" | "VecDeque" | "HashMap" | "HashSet" | "BTreeMap" | "BTreeSet"
                | "LinkedList" | "BinaryHeap" => {
                    "its elements live on this process's heap; use a fixed-size array, or a \
                     table allocated in the region and linked with ShmPtr"
                }
                "Box" => "it points into this process's heap; allocate in the region (ShmBox) and store a ShmPtr",
                "Rc" | "Arc" | "Weak" => {
                    "its reference count and value live in this process's heap; share through \
                     the region instead"
                }
                "Cell" | "RefCell" | "UnsafeCell" => {
                    "it allows unsynchronised mutation; guard the field with a lock \
                     (#[guarded_by]) or use an atomic"
                }
                _ => "",
            };
            if !why.is_empty() {
                return Some((ty, why));
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
