//! [`Inspector`]: a read-only attachment to a named region, for looking at its locks from
//! another process while the application runs (or hangs).

use super::LockReport;
use crate::shm::header::{self, Identity, HEADER_SIZE};
use crate::shm::map::{OpenedObject, ShmName};
use crate::shm::view::View;
use crate::{Error, Result};

/// A named region mapped read-only, for [`report`](Inspector::report).
///
/// It never takes a lock, never writes, and reads only through bounds-checked atomic loads,
/// so it works while the application is wedged and is safe against a region that changes
/// (or is damaged) under it: what it reports is a snapshot that may be slightly torn, never
/// a crash. It does not check who owns the object (a diagnostic tool may look at anyone's
/// region that it can open). One case no reader can defend against: a process that
/// *shrinks* the shm object while it is mapped makes the next read of the lost pages a
/// SIGBUS; `report` re-checks the size first, which narrows that to a race.
///
/// ```no_run
/// let top = lockkit::report::Inspector::open("/registrar")?;
/// print!("{}", top.report()?);
/// # Ok::<(), lockkit::Error>(())
/// ```
pub struct Inspector {
    name: String,
    object: OpenedObject,
    map: memmap2::Mmap,
    id: Identity,
}

impl Inspector {
    /// Maps the region called `name` read-only.
    ///
    /// Errors as [`ShmRegion::open`](crate::ShmRegion::open)'s (without the trust checks):
    /// a FIFO or the like at the name is [`Error::NotAnObject`], never waited on; a region
    /// with holes (a sparse copy) whose pages `/dev/shm` cannot provide is
    /// [`Error::NoSpace`] rather than a SIGBUS at the first read.
    pub fn open(name: &str) -> Result<Inspector> {
        let n = ShmName::parse(name)?;
        let object = OpenedObject::open_read_only(&n)?;
        let mut buf = vec![0u8; HEADER_SIZE];
        let got = object.read_start(&mut buf)?;
        let id = header::inspect(&n.display, &buf[..got], object.len()?)?;
        let map = object.map_read_only(id.total_size as usize)?;
        object.populate(&map)?;
        object.register_read_only(map.as_ptr(), map.len())?;
        Ok(Inspector {
            name: n.display,
            object,
            map,
            id,
        })
    }

    /// The region's name, with its leading slash.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The locks held, waited for or inconsistent right now (see
    /// [`ShmRegion::report`](crate::ShmRegion::report)). `Err(Truncated)` if the object
    /// was shrunk since it was opened.
    pub fn report(&self) -> Result<LockReport> {
        let len = self.object.len()?;
        if len < self.map.len() as u64 {
            return Err(Error::Truncated {
                name: self.name.clone(),
                expected: self.map.len() as u64,
                actual: len,
            });
        }
        // SAFETY: our live read-only mapping of the region, whose identity was validated
        // against its length; the scan only loads.
        let view = unsafe { View::new(self.map.as_ptr() as *mut u8, self.map.len(), self.id) };
        Ok(super::scan::scan(&view))
    }
}

impl Drop for Inspector {
    fn drop(&mut self) {
        crate::liveness::unregister_mapping(self.map.as_ptr());
    }
}
