//! The crate's one error type.

use std::fmt;
use std::io;

/// What went wrong in a lockkit operation. Each variant says what happened and its `Display`
/// text says what to do about it.
// The fields' names say what they hold; each variant's doc says when it happens.
#[allow(missing_docs)]
#[non_exhaustive]
pub enum Error {
    /// No shared-memory object has this name.
    NotFound { name: String },
    /// The object exists but this process may not open it (see the creator's mode).
    PermissionDenied { name: String },
    /// `create` found an object of this name already.
    AlreadyExists { name: String },
    /// The name cannot be a POSIX shared-memory name.
    InvalidName { name: String, reason: &'static str },
    /// Something that is not a shared-memory object (a directory, a symbolic link, a device)
    /// has this name under `/dev/shm`.
    NotAnObject { name: String, found: &'static str },
    /// Not returned by this version, kept so that code matching on it compiles: a region
    /// is now named only once it is complete, so a creator that dies half-way leaves
    /// nothing under the name. (It meant: the process that was creating this region died
    /// before it finished.)
    Abandoned { name: String, creator: u32 },
    /// The object is not to be trusted without asking: owned by another user, or writable
    /// by users other than its owner (see `RegionOptions`).
    Untrusted { name: String, reason: String },
    /// `create` was asked for a permission mode that would hand the region to other users
    /// (world-writable) or that means nothing here (set-id, sticky).
    UnsafeMode { mode: u32, reason: &'static str },
    /// The object exists but does not start with a lockkit header.
    NotLockkitRegion { name: String },
    /// The region was made by a lockkit with another layout version.
    VersionMismatch {
        name: String,
        found: u32,
        expected: u32,
    },
    /// The object is smaller than its header says it is.
    Truncated {
        name: String,
        expected: u64,
        actual: u64,
    },
    /// The header has the lockkit magic but its fields do not agree with each other.
    CorruptHeader { name: String, detail: String },
    /// The allocator's bookkeeping inside the region is damaged.
    CorruptRegion { detail: String },
    /// The requested region cannot hold even its own header.
    RegionTooSmall { requested: usize, minimum: usize },
    /// The file system behind the region (`/dev/shm`, or memory for an anonymous region)
    /// cannot reserve the region's size. Nothing was created.
    NoSpace { requested: usize, source: io::Error },
    /// No free block is large enough. The region is unchanged and stays usable.
    OutOfMemory {
        requested: usize,
        largest_free: usize,
    },
    /// A [`ShmPtr`](crate::ShmPtr) does not point at a live object of its type.
    InvalidPtr { offset: u64, reason: &'static str },
    /// A named root holds an object of another layout than the one asked for.
    /// `expected` and `found` are the two types' names as their programs wrote them;
    /// `difference` is the first field where their layouts differ, as in ``field `enabled`
    /// at offset 0: u32 here, bool in the region``.
    TypeMismatch {
        name: String,
        expected: String,
        found: String,
        difference: String,
    },
    /// No root has this name.
    RootNotFound { name: String },
    /// A root of this name is already published.
    RootExists { name: String },
    /// Every slot of the root table is in use.
    RootTableFull { capacity: usize },
    /// [`RegionSize`](crate::RegionSize) counted more type descriptions (`needed` bytes)
    /// than the largest type registry holds (`capacity` bytes).
    TypeRegistryFull { needed: usize, capacity: usize },
    /// The region records another layout under this type's 64-bit tag (the first 64 bits of
    /// its SHA-256 layout digest; only work spent on finding such a pair, or a damaged
    /// region, produces one): objects of this type cannot be told from that one's, so none
    /// is handed out.
    LayoutCollision { type_name: String },
    /// The region cannot keep this type's full layout, so it could not compare it with
    /// another program's: no object of it is allocated or handed out. `reason` says why and
    /// what to do (the region's type registry is full, or the type is too large or deep to
    /// describe; or, when an object is looked up, no description of its type is stored).
    TypeNotDescribed { type_name: String, reason: String },
    /// The handle was already freed (perhaps through a copy that `fork` made).
    StaleHandle,
    /// The handle belongs to another region.
    ForeignHandle,
    /// A lock set must have at least one lock.
    EmptyLockSet,
    /// A value does not fit in a fixed-capacity [`ShmStr`](crate::ShmStr) or
    /// [`ShmBytes`](crate::ShmBytes): `len` bytes for a capacity of `capacity`. Nothing was
    /// stored.
    TooLong { len: usize, capacity: usize },
    /// [`Workers::spawn`](crate::workers::Workers::spawn) was called in a process with
    /// `threads` threads: its child would get only the calling one.
    ForkWithThreads { threads: usize },
    /// An operating-system call failed.
    Os { op: &'static str, source: io::Error },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Error::*;
        match self {
            NotFound { name } => write!(
                f,
                "no shared-memory region named {name:?}: check the name, or create it first"
            ),
            PermissionDenied { name } => write!(
                f,
                "permission denied opening region {name:?}: run as its creator's user or have \
                 the creator choose a wider mode"
            ),
            AlreadyExists { name } => write!(
                f,
                "a shared-memory object named {name:?} already exists: open it, or unlink it \
                 if it is left over from a dead run"
            ),
            InvalidName { name, reason } => write!(f, "invalid name {name:?}: {reason}"),
            NotLockkitRegion { name } => write!(
                f,
                "{name:?} is not a lockkit region (no lockkit header): it belongs to another \
                 program or was never initialised"
            ),
            VersionMismatch {
                name,
                found,
                expected,
            } => write!(
                f,
                "region {name:?} has layout version {found}, this lockkit reads version \
                 {expected}: attach with the lockkit version that created it"
            ),
            Truncated {
                name,
                expected,
                actual,
            } => write!(
                f,
                "region {name:?} is truncated: its header says {expected} bytes but the \
                 object has {actual}"
            ),
            CorruptHeader { name, detail } => {
                write!(f, "region {name:?} has a corrupt header: {detail}")
            }
            CorruptRegion { detail } => write!(
                f,
                "the region's allocator bookkeeping is corrupt ({detail}); something wrote \
                 outside its objects"
            ),
            NoSpace { requested, source } => write!(
                f,
                "cannot reserve {requested} bytes of shared memory ({source}); free space in \
                 /dev/shm (`df -h /dev/shm`; a container's is often 64 MiB: raise it with \
                 `--shm-size`) or ask for a smaller region"
            ),
            NotAnObject { name, found } => write!(
                f,
                "/dev/shm{name} is {found}, not a shared-memory object; remove it or choose \
                 another name"
            ),
            Abandoned { name, creator } => write!(
                f,
                "region {name} was left half-made: its creator (pid {creator}) died while \
                 initialising it; remove it with ShmRegion::unlink and create it again"
            ),
            Untrusted { name, reason } => write!(
                f,
                "region {name} is not trusted: {reason}; if that is intended, open it with \
                 RegionOptions (allow_foreign_owner / allow_shared_write)"
            ),
            UnsafeMode { mode, reason } => write!(
                f,
                "refusing to create a region with mode {mode:o}: {reason}; use a mode such as \
                 0600 or 0660, or RegionOptions::allow_unsafe_mode if you mean it"
            ),
            RegionTooSmall { requested, minimum } => write!(
                f,
                "a region of {requested} bytes cannot hold its header and heap; ask for at \
                 least {minimum} bytes"
            ),
            OutOfMemory {
                requested,
                largest_free,
            } => write!(
                f,
                "out of shared memory: {requested} bytes requested, the largest free block \
                 holds {largest_free}; free objects or create a larger region"
            ),
            InvalidPtr { offset, reason } => {
                write!(f, "invalid ShmPtr (offset {offset:#x}): {reason}")
            }
            TypeMismatch {
                name,
                expected,
                found,
                difference,
            } => write!(
                f,
                "root {name:?} holds another layout: asked for {expected}, published as \
                 {found}; {difference}"
            ),
            RootNotFound { name } => {
                write!(f, "no root named {name:?} in this region: publish it first")
            }
            RootExists { name } => write!(
                f,
                "a root named {name:?} is already published: unpublish it first or choose \
                 another name"
            ),
            RootTableFull { capacity } => write!(
                f,
                "the region's root table is full ({capacity} roots): publish one root that \
                 points at the others"
            ),
            TypeRegistryFull { needed, capacity } => write!(
                f,
                "the types counted need {needed} bytes of type descriptions, more than a \
                 region's registry holds ({capacity}): split them over several regions"
            ),
            LayoutCollision { type_name } => write!(
                f,
                "{type_name} has the layout fingerprint of another type in this region, whose \
                 layout differs: rename a field of one of them"
            ),
            TypeNotDescribed { type_name, reason } => write!(
                f,
                "{type_name} cannot be used in this region, which could not compare its layout \
                 with other programs': {reason}"
            ),
            StaleHandle => f.write_str(
                "the object was already freed (perhaps through a copy of the handle made by \
                 fork)",
            ),
            ForeignHandle => f.write_str("the handle belongs to another region"),
            EmptyLockSet => f.write_str("a lock set needs at least one lock"),
            TooLong { len, capacity } => write!(
                f,
                "{len} bytes do not fit in a capacity of {capacity} bytes (nothing was \
                 stored): choose a larger capacity, or the `truncated` forms to keep what fits"
            ),
            ForkWithThreads { threads } => write!(
                f,
                "cannot fork a worker: this process has {threads} threads, and the child \
                 would get only the calling one (a lock another thread held would stay held \
                 in it for ever): fork the workers before starting threads, or use \
                 Workers::spawn_unchecked and answer for what the child does"
            ),
            Os { op, source } => write!(f, "{op} failed: {source}"),
        }
    }
}

/// The variant's name and the `Display` text with its advice, as `io::Error`'s `Debug`
/// carries the OS's message: `fn main() -> lockkit::Result<()>` prints an error with `Debug`,
/// and should say what to do, not only `AlreadyExists { name: "/x" }`.
///
/// ```
/// let e = lockkit::Error::AlreadyExists { name: "/nk-htable".into() };
/// assert_eq!(
///     format!("{e:?}"),
///     "AlreadyExists: a shared-memory object named \"/nk-htable\" already exists: open it, \
///      or unlink it if it is left over from a dead run"
/// );
/// ```
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {self}", self.kind_name())
    }
}

impl Error {
    /// The variant's name, for `Debug`.
    fn kind_name(&self) -> &'static str {
        use Error::*;
        match self {
            NotFound { .. } => "NotFound",
            PermissionDenied { .. } => "PermissionDenied",
            AlreadyExists { .. } => "AlreadyExists",
            InvalidName { .. } => "InvalidName",
            NotAnObject { .. } => "NotAnObject",
            Abandoned { .. } => "Abandoned",
            Untrusted { .. } => "Untrusted",
            UnsafeMode { .. } => "UnsafeMode",
            NotLockkitRegion { .. } => "NotLockkitRegion",
            VersionMismatch { .. } => "VersionMismatch",
            Truncated { .. } => "Truncated",
            CorruptHeader { .. } => "CorruptHeader",
            CorruptRegion { .. } => "CorruptRegion",
            RegionTooSmall { .. } => "RegionTooSmall",
            NoSpace { .. } => "NoSpace",
            OutOfMemory { .. } => "OutOfMemory",
            InvalidPtr { .. } => "InvalidPtr",
            TypeMismatch { .. } => "TypeMismatch",
            RootNotFound { .. } => "RootNotFound",
            RootExists { .. } => "RootExists",
            RootTableFull { .. } => "RootTableFull",
            TypeRegistryFull { .. } => "TypeRegistryFull",
            LayoutCollision { .. } => "LayoutCollision",
            TypeNotDescribed { .. } => "TypeNotDescribed",
            StaleHandle => "StaleHandle",
            ForeignHandle => "ForeignHandle",
            EmptyLockSet => "EmptyLockSet",
            TooLong { .. } => "TooLong",
            ForkWithThreads { .. } => "ForkWithThreads",
            Os { .. } => "Os",
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Os { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl Error {
    pub(crate) fn os(op: &'static str, source: io::Error) -> Self {
        Error::Os { op, source }
    }
}
