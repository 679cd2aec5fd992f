//! Getting shared mappings from the OS: a memfd for anonymous regions (inherited by `fork`),
//! POSIX shm objects (files in `/dev/shm`) for named ones.
//!
//! A named region is built in a file without a name (`O_TMPFILE` in `/dev/shm`) and given
//! its name only once it is complete, by `linkat`, which fails if the name exists. So a name
//! never leads to a half-made region, of all the creators racing for a name exactly one gets
//! it, and a creator that dies half-way leaves nothing behind: the kernel frees the unnamed
//! file with its last descriptor, and the name stays free. Nothing has to judge whether a
//! creator is still alive.
//!
//! An opener looks at what is at the name before it opens it and opens without blocking: a
//! FIFO or a device there is reported, never waited on.
//!
//! Invariants kept here: a [`Mapping`] is a `MAP_SHARED` mapping of exactly `len` bytes that
//! stays mapped until the `Mapping` is dropped; `base` is page-aligned and was taken from the
//! mapping through a unique borrow, so writes through it are allowed.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;

use memmap2::{MmapMut, MmapOptions};

use crate::{Error, Result};

/// A shared mapping, unmapped on drop.
pub(crate) struct Mapping {
    _map: MmapMut,
    base: *mut u8,
    len: usize,
    /// The mapped object's device and inode: what a name must still refer to before this
    /// process unlinks it.
    identity: Option<(u64, u64)>,
}

// SAFETY: the mapping is plain shared memory; all access through `base` goes through atomics,
// locks, or validated typed references, so using it from several threads is sound.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

impl Mapping {
    fn new(file: &File, len: usize) -> Result<Mapping> {
        // SAFETY: MAP_SHARED mapping of a file we hold open. Other processes may write the
        // memory at any time; lockkit never hands out `&mut` into it and reads shared fields
        // through atomics or behind locks, which is what makes such writes sound to observe.
        let mut map = unsafe { MmapOptions::new().len(len).map_mut(file) }
            .map_err(|e| Error::os("mmap", e))?;
        let base = map.as_mut_ptr();
        // So that locked! orders locks in this region the same way in every process, and so
        // that its locks name their holders by the region's owner ids.
        register(base, len, file, true)?;
        let identity = {
            use std::os::unix::fs::MetadataExt;
            file.metadata().ok().map(|m| (m.dev(), m.ino()))
        };
        Ok(Mapping {
            _map: map,
            base,
            len,
            identity,
        })
    }

    /// Whether the shm object called `name` now is the object this mapping maps (not one
    /// that replaced it under the same name).
    pub(crate) fn is_named(&self, name: &ShmName) -> bool {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(name.path()), self.identity) {
            (Ok(m), Some(id)) => (m.dev(), m.ino()) == id,
            _ => false,
        }
    }

    pub(crate) fn base(&self) -> *mut u8 {
        self.base
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

/// Registers a mapping of a region's `file` at `base` (see `liveness::register_mapping`).
pub(crate) fn register(base: *const u8, len: usize, file: &File, writable: bool) -> Result<()> {
    let area = base as usize + std::mem::offset_of!(super::header::Header, owners);
    crate::liveness::register_mapping(base, len, file, area, writable)
        .map_err(|e| Error::os("registering the region's mapping", e))
}

impl Drop for Mapping {
    fn drop(&mut self) {
        crate::liveness::unregister_mapping(self.base);
    }
}

/// `len` bytes of zeroed memory that stays shared with children created by `fork`.
///
/// memmap2's `map_anon` is `MAP_PRIVATE` (a forked child's writes would be its own), so
/// this maps a memfd with `MAP_SHARED` instead.
pub(crate) fn anonymous(len: usize) -> Result<Mapping> {
    let name = c"lockkit-anon";
    // SAFETY: a valid NUL-terminated name and flags; the returned fd is checked below.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    let file = file_from_fd(fd).map_err(|e| Error::os("memfd_create", e))?;
    size_and_reserve(&file, len)?;
    Mapping::new(&file, len)
}

/// Sizes the object and reserves its pages. `ftruncate` alone reserves nothing: on a full
/// `/dev/shm` the first touch of a page past the free space would kill the process with
/// SIGBUS, long after `create` said yes. `posix_fallocate` makes the file system say no now.
fn size_and_reserve(file: &File, len: usize) -> Result<()> {
    let no_space = |source: io::Error| match source.raw_os_error() {
        Some(libc::ENOSPC | libc::EFBIG | libc::ENOMEM) => Error::NoSpace {
            requested: len,
            source,
        },
        _ => Error::os("ftruncate", source),
    };
    file.set_len(len as u64).map_err(no_space)?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(file);
    let Ok(len_off) = libc::off_t::try_from(len) else {
        return Err(no_space(io::Error::from_raw_os_error(libc::EFBIG)));
    };
    // SAFETY: fallocate on an fd we own, over its own length.
    match unsafe { libc::posix_fallocate(fd, 0, len_off) } {
        0 => Ok(()),
        // A file system that cannot reserve (not tmpfs): nothing to gain, nothing lost.
        libc::EOPNOTSUPP | libc::EINVAL => Ok(()),
        e => Err(no_space(io::Error::from_raw_os_error(e))),
    }
}

/// A POSIX shm name, as given by the user and as passed to `shm_open`.
pub(crate) struct ShmName {
    /// With the leading slash, as `shm_open` wants it and as messages show it.
    pub(crate) display: String,
    c: CString,
    /// The object's file: `/dev/shm/name`, where glibc's `shm_open` puts it too.
    path: CString,
}

impl ShmName {
    pub(crate) fn parse(name: &str) -> Result<ShmName> {
        let invalid = |reason| Error::InvalidName {
            name: name.to_owned(),
            reason,
        };
        let bare = name.strip_prefix('/').unwrap_or(name);
        if bare.is_empty() {
            return Err(invalid("it is empty"));
        }
        if bare.contains('/') {
            return Err(invalid("only a leading '/' is allowed"));
        }
        if bare.contains('\0') {
            return Err(invalid("it contains a NUL byte"));
        }
        if bare == "." || bare == ".." {
            return Err(invalid("'.' and '..' are not object names"));
        }
        if bare.len() > 254 {
            return Err(invalid("it is longer than 254 bytes"));
        }
        let display = format!("/{bare}");
        let c = CString::new(display.clone()).map_err(|_| invalid("it contains a NUL byte"))?;
        let path = CString::new(format!("{SHM_DIR}/{bare}"))
            .map_err(|_| invalid("it contains a NUL byte"))?;
        Ok(ShmName { display, c, path })
    }

    fn path(&self) -> &std::path::Path {
        use std::os::unix::ffi::OsStrExt;
        std::path::Path::new(std::ffi::OsStr::from_bytes(self.path.as_bytes()))
    }
}

/// Where POSIX shm objects live on Linux.
const SHM_DIR: &str = "/dev/shm";

fn file_from_fd(fd: libc::c_int) -> io::Result<File> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by the kernel, is open, and nothing else owns it.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// What a file of type `t` is, for error messages; `None` for a regular file.
fn kind(t: std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    Some(if t.is_file() {
        return None;
    } else if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    })
}

/// What is at `/dev/shm/<name>` when it is not a plain file, for error messages.
fn not_an_object(name: &ShmName) -> Option<&'static str> {
    kind(std::fs::symlink_metadata(name.path()).ok()?.file_type())
}

fn open_error(name: &ShmName, e: io::Error) -> Error {
    if matches!(
        e.raw_os_error(),
        Some(libc::EISDIR | libc::EINVAL | libc::ELOOP | libc::ENXIO | libc::EEXIST)
    ) {
        if let Some(found) = not_an_object(name) {
            return Error::NotAnObject {
                name: name.display.clone(),
                found,
            };
        }
    }
    let name = name.display.clone();
    match e.raw_os_error() {
        Some(libc::ENOENT) => Error::NotFound { name },
        Some(libc::EACCES) | Some(libc::EPERM) => Error::PermissionDenied { name },
        Some(libc::EEXIST) => Error::AlreadyExists { name },
        Some(libc::ENAMETOOLONG) | Some(libc::EINVAL) => Error::InvalidName {
            name,
            reason: "the system rejects it",
        },
        _ => Error::os("opening the shm object", e),
    }
}

/// A region's file that has no name yet: made by [`create_unnamed`], named by
/// [`Unnamed::publish`]. Dropped unnamed, it is freed with its last mapping.
pub(crate) struct Unnamed {
    file: File,
    len: usize,
}

/// Creates a file without a name in `/dev/shm` with exactly `mode`, sized `len` with its
/// pages reserved, and maps it. Nobody can open it until [`Unnamed::publish`] names it; if
/// this process dies first, the kernel frees it.
pub(crate) fn create_unnamed(name: &ShmName, len: usize, mode: u32) -> Result<(Mapping, Unnamed)> {
    // SAFETY: a valid C string; the mode is passed as the variadic argument open expects.
    let fd = unsafe {
        libc::open(
            c"/dev/shm".as_ptr(),
            libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    };
    let file = file_from_fd(fd).map_err(|e| match e.raw_os_error() {
        Some(libc::EACCES | libc::EPERM) => Error::PermissionDenied {
            name: name.display.clone(),
        },
        Some(libc::ENOSPC) => Error::NoSpace {
            requested: len,
            source: e,
        },
        _ => Error::os("open(/dev/shm, O_TMPFILE)", e),
    })?;
    // The umask narrowed the mode given to open; set exactly what the creator asked for.
    // SAFETY: fchmod on an fd we own.
    if unsafe { libc::fchmod(std::os::fd::AsRawFd::as_raw_fd(&file), mode as libc::mode_t) } != 0 {
        return Err(Error::os("fchmod", io::Error::last_os_error()));
    }
    size_and_reserve(&file, len)?;
    let map = Mapping::new(&file, len)?;
    Ok((map, Unnamed { file, len }))
}

impl Unnamed {
    /// Gives the file its name, unless the name exists ([`Error::AlreadyExists`], or
    /// [`Error::NotAnObject`] for a directory and the like): one step, so of the processes
    /// creating one name at once exactly one succeeds.
    pub(crate) fn publish(self, name: &ShmName) -> Result<()> {
        // Through /proc/self/fd, the way open(2) documents for O_TMPFILE files: `linkat`
        // with AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH on many kernels, and lockkit needs
        // /proc/self/fd anyway (for owner ids, `crate::liveness`).
        let fd = std::os::fd::AsRawFd::as_raw_fd(&self.file);
        let from = CString::new(format!("/proc/self/fd/{fd}")).expect("no NUL in a number");
        // SAFETY: valid C strings; linkat only reads them.
        let r = unsafe {
            libc::linkat(
                libc::AT_FDCWD,
                from.as_ptr(),
                libc::AT_FDCWD,
                name.path.as_ptr(),
                libc::AT_SYMLINK_FOLLOW,
            )
        };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        Err(match e.raw_os_error() {
            Some(libc::ENOSPC) => Error::NoSpace {
                requested: self.len,
                source: e,
            },
            Some(libc::EEXIST | libc::EACCES | libc::EPERM) => open_error(name, e),
            _ => Error::os("naming the region (linkat through /proc/self/fd)", e),
        })
    }
}

/// An existing shm object, opened for reading and writing but not yet mapped.
pub(crate) struct OpenedObject {
    file: File,
}

impl OpenedObject {
    pub(crate) fn open(name: &ShmName) -> Result<OpenedObject> {
        Self::open_flags(name, libc::O_RDWR)
    }

    /// For the inspector, which never writes.
    pub(crate) fn open_read_only(name: &ShmName) -> Result<OpenedObject> {
        Self::open_flags(name, libc::O_RDONLY)
    }

    fn open_flags(name: &ShmName, flags: libc::c_int) -> Result<OpenedObject> {
        let not_an_object = |found| Error::NotAnObject {
            name: name.display.clone(),
            found,
        };
        // Opening a FIFO or a device can block, or disturb whoever uses it: look first.
        match std::fs::symlink_metadata(name.path()) {
            Ok(m) => {
                if let Some(found) = kind(m.file_type()) {
                    return Err(not_an_object(found));
                }
            }
            Err(e) => return Err(open_error(name, e)),
        }
        // Something else may have been put there since: O_NONBLOCK so that a FIFO cannot
        // block the open (it changes nothing for a regular file), O_NOFOLLOW as shm_open.
        // SAFETY: a valid C string; no O_CREAT, so the mode argument is unused.
        let fd = unsafe {
            libc::open(
                name.path.as_ptr(),
                flags | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC,
                0,
            )
        };
        let file = file_from_fd(fd).map_err(|e| open_error(name, e))?;
        let m = file.metadata().map_err(|e| Error::os("fstat", e))?;
        if let Some(found) = kind(m.file_type()) {
            return Err(not_an_object(found));
        }
        Ok(OpenedObject { file })
    }

    /// Whether the first `len` bytes of the object have pages behind them: a hole (a sparse
    /// copy's) is given a page by tmpfs at the first touch, read or write, and when
    /// `/dev/shm` is full that touch is a SIGBUS. When the kernel cannot say, `false`.
    fn fully_backed(&self, len: u64) -> bool {
        let fd = std::os::fd::AsRawFd::as_raw_fd(&self.file);
        // SAFETY: lseek on an fd we own; it moves only this description's offset, which
        // nothing here uses (reads are positioned).
        let hole = unsafe { libc::lseek(fd, 0, libc::SEEK_HOLE) };
        hole >= 0 && hole as u64 >= len
    }

    /// Makes sure the pages of the first `len` bytes exist, allocating the missing ones, so
    /// that no touch of them can be a SIGBUS: [`Error::NoSpace`] when `/dev/shm` cannot hold
    /// them. Needs a writable description.
    pub(crate) fn reserve(&self, len: u64) -> Result<()> {
        if self.fully_backed(len) {
            return Ok(());
        }
        let fd = std::os::fd::AsRawFd::as_raw_fd(&self.file);
        let Ok(len_off) = libc::off_t::try_from(len) else {
            return Ok(());
        };
        loop {
            // SAFETY: fallocate on an fd we own; mode 0 within the file's size (the caller
            // checked it) allocates zeroed pages for holes and changes no byte or size.
            // (Not posix_fallocate: where the file system cannot, glibc emulates it by
            // writing bytes, which would race with the processes using the region.)
            if unsafe { libc::fallocate(fd, 0, 0, len_off) } == 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ENOSPC | libc::ENOMEM | libc::EFBIG) => Err(Error::NoSpace {
                    requested: len as usize,
                    source: e,
                }),
                // A file system that cannot reserve (not tmpfs) does not give pages on reads.
                Some(libc::EOPNOTSUPP) => Ok(()),
                _ => Err(Error::os("fallocate", e)),
            };
        }
    }

    /// For a read-only `map` of this object, which cannot `reserve`: faults every page of it
    /// in now, when a page that cannot be had is an error ([`Error::NoSpace`]) instead of a
    /// SIGBUS later.
    pub(crate) fn populate(&self, map: &memmap2::Mmap) -> Result<()> {
        if self.fully_backed(map.len() as u64) {
            return Ok(());
        }
        loop {
            // SAFETY: the range is our own live mapping; MADV_POPULATE_READ only faults its
            // pages in (as reads would) and reports a failure instead of raising SIGBUS.
            let r = unsafe {
                libc::madvise(
                    map.as_ptr() as *mut libc::c_void,
                    map.len(),
                    libc::MADV_POPULATE_READ,
                )
            };
            if r == 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EFAULT | libc::ENOMEM) => Err(Error::NoSpace {
                    requested: map.len(),
                    source: e,
                }),
                _ => Err(Error::os("madvise(MADV_POPULATE_READ)", e)),
            };
        }
    }

    /// A read-only mapping of the first `len` bytes.
    /// Registers a read-only mapping of this object (an inspector's), so that its locks'
    /// holders are described through this process's own description of the file.
    pub(crate) fn register_read_only(&self, base: *const u8, len: usize) -> Result<()> {
        register(base, len, &self.file, false)
    }

    pub(crate) fn map_read_only(&self, len: usize) -> Result<memmap2::Mmap> {
        // SAFETY: a MAP_SHARED, PROT_READ mapping of a file we hold open; other processes
        // write it at any time, and the inspector reads it only through atomics (View).
        unsafe { memmap2::MmapOptions::new().len(len).map(&self.file) }
            .map_err(|e| Error::os("mmap", e))
    }

    /// The object's owner and permission bits.
    pub(crate) fn owner_and_mode(&self) -> Result<(u32, u32)> {
        use std::os::unix::fs::MetadataExt;
        let m = self.file.metadata().map_err(|e| Error::os("fstat", e))?;
        Ok((m.uid(), m.mode()))
    }

    /// The object's current size in bytes.
    pub(crate) fn len(&self) -> Result<u64> {
        Ok(self
            .file
            .metadata()
            .map_err(|e| Error::os("fstat", e))?
            .len())
    }

    /// Reads up to `buf.len()` bytes from the start; returns how many there were.
    pub(crate) fn read_start(&self, buf: &mut [u8]) -> Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            match self.file.read_at(&mut buf[n..], n as u64) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::os("read", e)),
            }
        }
        Ok(n)
    }

    pub(crate) fn map(&self, len: usize) -> Result<Mapping> {
        Mapping::new(&self.file, len)
    }
}

/// [`Error::AlreadyExists`] (or [`Error::NotAnObject`]) if something is at the name now.
pub(crate) fn refuse_existing(name: &ShmName) -> Result<()> {
    match std::fs::symlink_metadata(name.path()) {
        Ok(_) => Err(open_error(name, io::Error::from_raw_os_error(libc::EEXIST))),
        Err(_) => Ok(()),
    }
}

pub(crate) fn unlink_named(name: &ShmName) -> Result<()> {
    // SAFETY: a valid C string.
    if unsafe { libc::shm_unlink(name.c.as_ptr()) } != 0 {
        return Err(open_error(name, io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_take_an_optional_leading_slash() {
        assert_eq!(ShmName::parse("registrar").unwrap().display, "/registrar");
        assert_eq!(ShmName::parse("/registrar").unwrap().display, "/registrar");
    }

    #[test]
    fn bad_names_are_rejected_with_a_reason() {
        for bad in ["", "/", "a/b", "//a", "..", "x\0y"] {
            assert!(
                matches!(ShmName::parse(bad), Err(Error::InvalidName { .. })),
                "{bad:?}"
            );
        }
        assert!(ShmName::parse(&"n".repeat(255)).is_err());
    }
}
