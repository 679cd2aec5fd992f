//! [`RegionOptions`]: how a named region is created or opened, and what an opener trusts.
//!
//! A region holds every lock and the heap of the processes that share it, so whoever can
//! write the object can wedge or mislead all of them. The defaults therefore trust only
//! objects this user owns and nobody else may write, create objects only this user may open
//! (0600), and refuse modes that would hand the region to every local user.

use std::time::Duration;

use super::header::{self, Identity, HEADER_SIZE};
use super::map::{self, OpenedObject, ShmName};
use super::{page_round, ShmRegion, DEFAULT_MODE};
use crate::{Error, Result};

/// Options for [`RegionOptions::create`] and [`RegionOptions::open`];
/// [`ShmRegion::create`] and [`ShmRegion::open`] use the defaults.
///
/// ```
/// use lockkit::RegionOptions;
///
/// let name = format!("/lockkit-doc-options-{}", std::process::id());
/// // A region for a group of cooperating users:
/// let region = RegionOptions::new().mode(0o660).create(&name, 1 << 20)?;
/// // Group-writable, so an opener must say it expects that:
/// let other = RegionOptions::new().allow_shared_write(true).open(&name)?;
/// assert_eq!(other.size(), region.size());
/// # Ok::<(), lockkit::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct RegionOptions {
    mode: u32,
    allow_unsafe_mode: bool,
    allow_foreign_owner: bool,
    allow_shared_write: bool,
}

impl Default for RegionOptions {
    fn default() -> Self {
        RegionOptions {
            mode: DEFAULT_MODE,
            allow_unsafe_mode: false,
            allow_foreign_owner: false,
            allow_shared_write: false,
        }
    }
}

impl RegionOptions {
    /// The defaults: mode 0600, trust only this user's objects that nobody else may write.
    pub fn new() -> Self {
        Self::default()
    }

    /// The permission bits of a region this creates (the umask does not narrow them).
    /// World-writable modes and set-id or sticky bits are refused unless
    /// [`allow_unsafe_mode`](RegionOptions::allow_unsafe_mode).
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Lets [`create`](RegionOptions::create) use a world-writable mode or set-id/sticky
    /// bits: every local user could then take the region's locks and scribble on its heap.
    pub fn allow_unsafe_mode(mut self, yes: bool) -> Self {
        self.allow_unsafe_mode = yes;
        self
    }

    /// Lets [`open`](RegionOptions::open) attach to an object owned by another user.
    pub fn allow_foreign_owner(mut self, yes: bool) -> Self {
        self.allow_foreign_owner = yes;
        self
    }

    /// Lets [`open`](RegionOptions::open) attach to an object that its group or other users
    /// may write (created with 0660, say).
    pub fn allow_shared_write(mut self, yes: bool) -> Self {
        self.allow_shared_write = yes;
        self
    }

    /// Changes nothing; kept so that code written for earlier versions compiles.
    ///
    /// [`open`](RegionOptions::open) used to wait this long for a region whose creator was
    /// still setting it up. A region now gets its name only once it is complete, so an
    /// opener never finds one half-made, and has nothing to wait for.
    pub fn ready_timeout(self, _timeout: Duration) -> Self {
        self
    }

    /// Changes nothing; kept so that code written for earlier versions compiles.
    ///
    /// It used to let [`create`](RegionOptions::create) remove and remake a region whose
    /// creator died half-way. A region is now built without a name and named only once it
    /// is complete: a creator that dies half-way leaves nothing under the name (the kernel
    /// frees what it had built), so the next `create` simply succeeds, and there is never an
    /// abandoned region to replace (nor a region of a live creator to take for one).
    ///
    /// ```
    /// use lockkit::{RegionOptions, ShmRegion};
    ///
    /// let name = format!("/lockkit-doc-restart-{}", std::process::id());
    /// // Whether or not an earlier run died while creating it:
    /// let region = RegionOptions::new().replace_abandoned(true).create(&name, 1 << 20)?;
    /// // Any other process creating the name now is refused; the name leads to `region`.
    /// assert!(ShmRegion::create(&name, 1 << 20).is_err());
    /// # Ok::<(), lockkit::Error>(())
    /// ```
    pub fn replace_abandoned(self, _yes: bool) -> Self {
        self
    }

    /// Creates a named region of `size` bytes (rounded up to whole pages); see
    /// [`ShmRegion::create`].
    pub fn create(&self, name: &str, size: usize) -> Result<ShmRegion> {
        let n = ShmName::parse(name)?;
        if !self.allow_unsafe_mode {
            if self.mode & 0o7000 != 0 {
                return Err(Error::UnsafeMode {
                    mode: self.mode,
                    reason: "set-id and sticky bits mean nothing on a shared-memory object",
                });
            }
            if self.mode & 0o002 != 0 {
                return Err(Error::UnsafeMode {
                    mode: self.mode,
                    reason: "every local user could take the region's locks and write its heap",
                });
            }
        }
        let size = page_round(size)?;
        let id = Identity::for_size(size)?;
        // Only to fail fast: building a large region takes a while, and `publish` refuses a
        // name that exists in any case.
        map::refuse_existing(&n)?;
        let (map, unnamed) = map::create_unnamed(&n, size, self.mode & 0o7777)?;
        let region = ShmRegion::format(map, id, Some(n.display.clone()), Some(std::process::id()))?;
        if let Err(e) = unnamed.publish(&n) {
            // Never named: the name is somebody else's, and this region goes with its last
            // handle.
            region.keep_name();
            return Err(e);
        }
        Ok(region)
    }

    /// Attaches to a named region that some process created; see [`ShmRegion::open`].
    pub fn open(&self, name: &str) -> Result<ShmRegion> {
        let n = ShmName::parse(name)?;
        let obj = OpenedObject::open(&n)?;
        self.check_trust(&n, &obj)?;
        let mut buf = vec![0u8; HEADER_SIZE];
        let got = obj.read_start(&mut buf)?;
        let id = header::inspect(&n.display, &buf[..got], obj.len()?)?;
        obj.reserve(id.total_size)?;
        let map = obj.map(id.total_size as usize)?;
        Ok(ShmRegion::attach(map, id, Some(n.display), None))
    }

    fn check_trust(&self, n: &ShmName, obj: &OpenedObject) -> Result<()> {
        let (uid, mode) = obj.owner_and_mode()?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        let untrusted = |reason: String| Error::Untrusted {
            name: n.display.clone(),
            reason,
        };
        if uid != me && !self.allow_foreign_owner {
            return Err(untrusted(format!(
                "it is owned by uid {uid}, not by this process's uid {me}"
            )));
        }
        if mode & 0o022 != 0 && !self.allow_shared_write {
            return Err(untrusted(format!(
                "users other than its owner may write it (mode {:o})",
                mode & 0o7777
            )));
        }
        Ok(())
    }
}
