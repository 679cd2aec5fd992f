//! [`ShmStr`] and [`ShmBytes`]: strings and byte strings of fixed capacity, stored inline,
//! for keys and values in shared memory.
//!
//! Both are `#[repr(C)]`: a `u32` length, then `N` bytes. Another process can write any
//! bytes there (a bug, a holder killed half-way through an update), so nothing read from one
//! trusts them: the length is clamped to `N`, and a `ShmStr` whose bytes are not UTF-8 is
//! read up to its first invalid byte. No byte pattern makes a read panic or misbehave, and
//! this module has no `unsafe` code.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::str::FromStr;

use crate::layout::{FieldLayout, Shape, TypeLayout};
use crate::{Error, Result, ShmSafe, ShmZeroable};

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
fn floor_boundary(s: &str, max: usize) -> usize {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    end
}

/// The bytes a stored length covers, whatever the length says.
fn stored(len: u32, bytes: &[u8]) -> &[u8] {
    &bytes[..(len as usize).min(bytes.len())]
}

/// Copies `src` into `dst` and returns the new length.
fn store(dst: &mut [u8], src: &[u8]) -> u32 {
    dst[..src.len()].copy_from_slice(src);
    src.len() as u32
}

/// A marker field no Rust field can be named like, so that a `ShmStr<N>`, a `ShmBytes<N>`
/// and a plain struct of a `u32` and `[u8; N]` have three different fingerprints.
const fn marker(name: &'static str) -> TypeLayout {
    TypeLayout::sized::<()>(name, Shape::Empty)
}
const STR_MARKER: TypeLayout = marker("#lockkit::ShmStr/1");
const BYTES_MARKER: TypeLayout = marker("#lockkit::ShmBytes/1");

/// A UTF-8 string of at most `N` bytes, stored inline: a key or a value in shared memory,
/// where `String` cannot go.
///
/// `#[repr(C)]`: a `u32` length, then `N` bytes. Zero bytes are the empty string, so a
/// zeroed allocation holds empty strings. Compares, orders and hashes as its
/// [`as_str`](ShmStr::as_str), so it can key a `HashMap` looked up by `&str`.
///
/// ```
/// use lockkit::{ShmRegion, ShmSafe, ShmStr};
///
/// #[derive(ShmSafe)]
/// #[repr(C)]
/// struct Binding {
///     aor: ShmStr<64>,
///     contact: ShmStr<128>,
///     expires: u32,
/// }
///
/// let region = ShmRegion::anonymous(1 << 16)?;
/// let b = region.alloc(Binding {
///     aor: "sip:alice@example.org".try_into()?,
///     contact: ShmStr::truncated("sip:alice@192.0.2.1:5060;transport=tcp"),
///     expires: 3600,
/// })?;
/// assert_eq!(b.aor, "sip:alice@example.org");
/// assert!(b.contact.starts_with("sip:alice@")); // derefs to `str`
///
/// let too_long = ShmStr::<8>::try_from("sip:alice@example.org");
/// assert!(matches!(too_long, Err(lockkit::Error::TooLong { len: 21, capacity: 8 })));
/// # Ok::<(), lockkit::Error>(())
/// ```
///
/// # Bytes written by another process
/// What another process wrote is read, never trusted: a length above `N` is read as `N`,
/// and bytes that are not UTF-8 end the string at the first invalid sequence (the valid
/// prefix is returned; [`is_intact`](ShmStr::is_intact) tells whether anything was left
/// out). A read never panics and never returns invalid UTF-8. `as_str` validates on every
/// call (it cannot know whether the bytes changed since the last); hold on to the `&str`
/// when reading it several times. The `&str` points into the string's own bytes, so it
/// stays valid only while nobody rewrites them: read it under the lock that guards the
/// string (a `#[guarded_by]` field, a `ShmMutex`), as every writer must write under it. A
/// process that writes the bytes without that lock while another reads them can break the
/// reader, as with any data written outside its lock.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ShmStr<const N: usize> {
    len: u32,
    bytes: [u8; N],
}

/// Bytes of at most `N`, stored inline: a binary key or value in shared memory, where `Vec`
/// cannot go.
///
/// `#[repr(C)]`: a `u32` length, then `N` bytes. Zero bytes are the empty value. Compares,
/// orders and hashes as its [`as_bytes`](ShmBytes::as_bytes); displays as escaped ASCII
/// (`\xff`, `\n`).
///
/// ```
/// use lockkit::ShmBytes;
///
/// let mut id = ShmBytes::<16>::try_from(&b"\x01\x02call"[..])?;
/// assert_eq!(id, &b"\x01\x02call"[..]);
/// id.extend_from_slice(b"-7")?;
/// assert_eq!(id.to_string(), "\\x01\\x02call-7");
/// assert!(id.extend_from_slice(&[0; 9]).is_err()); // 17 bytes: nothing stored
/// assert_eq!(id.len(), 8);
/// # Ok::<(), lockkit::Error>(())
/// ```
///
/// # Bytes written by another process
/// A length above `N` is read as `N`; every byte pattern is a valid value. A read never
/// panics.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ShmBytes<const N: usize> {
    len: u32,
    bytes: [u8; N],
}

// SAFETY: a u32 and a byte array, inline; every bit pattern is a value this module reads
// safely (see the module docs). The layout names both fields at their offsets, and a marker
// that tells it from other types of the same fields.
unsafe impl<const N: usize> ShmSafe for ShmStr<N> {
    const LAYOUT: &'static TypeLayout = &TypeLayout::of_fields::<Self>(
        "ShmStr",
        &[
            FieldLayout {
                name: "len",
                offset: std::mem::offset_of!(Self, len),
                layout: u32::LAYOUT,
            },
            FieldLayout {
                name: "bytes",
                offset: std::mem::offset_of!(Self, bytes),
                layout: <[u8; N]>::LAYOUT,
            },
            FieldLayout {
                name: STR_MARKER.name,
                offset: 0,
                layout: &STR_MARKER,
            },
        ],
    );
}
// SAFETY: zero bytes are length 0: the empty string.
unsafe impl<const N: usize> ShmZeroable for ShmStr<N> {}

// SAFETY: as for ShmStr.
unsafe impl<const N: usize> ShmSafe for ShmBytes<N> {
    const LAYOUT: &'static TypeLayout = &TypeLayout::of_fields::<Self>(
        "ShmBytes",
        &[
            FieldLayout {
                name: "len",
                offset: std::mem::offset_of!(Self, len),
                layout: u32::LAYOUT,
            },
            FieldLayout {
                name: "bytes",
                offset: std::mem::offset_of!(Self, bytes),
                layout: <[u8; N]>::LAYOUT,
            },
            FieldLayout {
                name: BYTES_MARKER.name,
                offset: 0,
                layout: &BYTES_MARKER,
            },
        ],
    );
}
// SAFETY: zero bytes are length 0: the empty value.
unsafe impl<const N: usize> ShmZeroable for ShmBytes<N> {}

impl<const N: usize> ShmStr<N> {
    /// The length is a `u32`: a capacity beyond it could not be recorded.
    const CAPACITY_FITS: () = assert!(N <= u32::MAX as usize, "ShmStr: N exceeds u32::MAX");

    /// The empty string (the same as zeroed memory).
    ///
    /// ```
    /// assert_eq!(lockkit::ShmStr::<8>::new(), "");
    /// ```
    pub const fn new() -> Self {
        let () = Self::CAPACITY_FITS;
        ShmStr {
            len: 0,
            bytes: [0; N],
        }
    }

    /// `s`, cut at the last char boundary at or before `N` bytes if it is longer. Use
    /// `try_from` (or [`set`](ShmStr::set)) to be told instead.
    ///
    /// ```
    /// use lockkit::ShmStr;
    /// assert_eq!(ShmStr::<4>::truncated("héllo"), "hél"); // 'é' is two bytes
    /// assert_eq!(ShmStr::<2>::truncated("héllo"), "h"); // not half an 'é'
    /// ```
    pub fn truncated(s: &str) -> Self {
        let mut out = Self::new();
        out.set_truncated(s);
        out
    }

    /// The capacity, `N` bytes.
    ///
    /// ```
    /// assert_eq!(lockkit::ShmStr::<32>::new().capacity(), 32);
    /// ```
    pub const fn capacity(&self) -> usize {
        N
    }

    /// The string (see [the type's docs](ShmStr) for what is returned when another process
    /// wrote a length above `N` or bytes that are not UTF-8: the valid prefix).
    ///
    /// ```
    /// let s = lockkit::ShmStr::<16>::try_from("sip:bob")?;
    /// assert_eq!(s.as_str(), "sip:bob");
    /// # Ok::<(), lockkit::Error>(())
    /// ```
    pub fn as_str(&self) -> &str {
        let b = stored(self.len, &self.bytes);
        match std::str::from_utf8(b) {
            Ok(s) => s,
            // A prefix that ends where validation stopped is valid; the fallback is
            // unreachable but keeps this function free of panics and `unsafe`.
            Err(e) => std::str::from_utf8(&b[..e.valid_up_to()]).unwrap_or_default(),
        }
    }

    /// The string's bytes: those of [`as_str`](ShmStr::as_str).
    ///
    /// ```
    /// assert_eq!(lockkit::ShmStr::<4>::truncated("abc").as_bytes(), b"abc");
    /// ```
    pub fn as_bytes(&self) -> &[u8] {
        self.as_str().as_bytes()
    }

    /// The length in bytes of [`as_str`](ShmStr::as_str).
    ///
    /// ```
    /// assert_eq!(lockkit::ShmStr::<8>::truncated("é").len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.as_str().len()
    }

    /// Whether [`as_str`](ShmStr::as_str) is empty.
    ///
    /// ```
    /// assert!(lockkit::ShmStr::<8>::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the stored length and bytes are what this type writes (a length within `N`,
    /// UTF-8 bytes): false when another process wrote something else, and
    /// [`as_str`](ShmStr::as_str) returns only part of it.
    ///
    /// ```
    /// assert!(lockkit::ShmStr::<8>::truncated("ok").is_intact());
    /// ```
    pub fn is_intact(&self) -> bool {
        self.len as usize <= N && std::str::from_utf8(stored(self.len, &self.bytes)).is_ok()
    }

    /// Replaces the string with `s`, or, if `s` is longer than `N` bytes, leaves it as it was
    /// and returns [`Error::TooLong`].
    ///
    /// ```
    /// let mut s = lockkit::ShmStr::<4>::new();
    /// s.set("abcd")?;
    /// assert!(s.set("abcde").is_err());
    /// assert_eq!(s, "abcd");
    /// # Ok::<(), lockkit::Error>(())
    /// ```
    pub fn set(&mut self, s: &str) -> Result<()> {
        if s.len() > N {
            return Err(Error::TooLong {
                len: s.len(),
                capacity: N,
            });
        }
        self.len = store(&mut self.bytes, s.as_bytes());
        Ok(())
    }

    /// Replaces the string with as much of `s` as fits, cut at a char boundary; returns
    /// whether anything was cut.
    ///
    /// ```
    /// let mut s = lockkit::ShmStr::<3>::new();
    /// assert!(s.set_truncated("abcd"));
    /// assert_eq!(s, "abc");
    /// ```
    pub fn set_truncated(&mut self, s: &str) -> bool {
        let end = floor_boundary(s, N);
        self.len = store(&mut self.bytes, &s.as_bytes()[..end]);
        end < s.len()
    }

    /// Appends `s`, or, if the result would exceed `N` bytes, leaves the string as it was
    /// and returns [`Error::TooLong`]. (A damaged string is first cut to its valid prefix.)
    ///
    /// ```
    /// let mut s = lockkit::ShmStr::<8>::try_from("sip:")?;
    /// s.push_str("bob")?;
    /// assert_eq!(s, "sip:bob");
    /// assert!(s.push_str("by").is_err());
    /// # Ok::<(), lockkit::Error>(())
    /// ```
    pub fn push_str(&mut self, s: &str) -> Result<()> {
        let at = self.len();
        let len = at + s.len();
        if len > N {
            return Err(Error::TooLong { len, capacity: N });
        }
        self.len = at as u32 + store(&mut self.bytes[at..], s.as_bytes());
        Ok(())
    }

    /// Empties the string.
    ///
    /// ```
    /// let mut s = lockkit::ShmStr::<8>::truncated("x");
    /// s.clear();
    /// assert!(s.is_empty());
    /// ```
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

impl<const N: usize> ShmBytes<N> {
    /// The length is a `u32`: a capacity beyond it could not be recorded.
    const CAPACITY_FITS: () = assert!(N <= u32::MAX as usize, "ShmBytes: N exceeds u32::MAX");

    /// The empty value (the same as zeroed memory).
    ///
    /// ```
    /// assert!(lockkit::ShmBytes::<8>::new().is_empty());
    /// ```
    pub const fn new() -> Self {
        let () = Self::CAPACITY_FITS;
        ShmBytes {
            len: 0,
            bytes: [0; N],
        }
    }

    /// The first `N` bytes of `b` (all of it if it fits). Use `try_from` (or
    /// [`set`](ShmBytes::set)) to be told instead.
    ///
    /// ```
    /// assert_eq!(lockkit::ShmBytes::<2>::truncated(b"abc"), &b"ab"[..]);
    /// ```
    pub fn truncated(b: &[u8]) -> Self {
        let mut out = Self::new();
        out.set_truncated(b);
        out
    }

    /// The capacity, `N` bytes.
    ///
    /// ```
    /// assert_eq!(lockkit::ShmBytes::<32>::new().capacity(), 32);
    /// ```
    pub const fn capacity(&self) -> usize {
        N
    }

    /// The bytes (at most `N`, whatever length another process wrote).
    ///
    /// ```
    /// assert_eq!(lockkit::ShmBytes::<4>::truncated(b"ab").as_bytes(), b"ab");
    /// ```
    pub fn as_bytes(&self) -> &[u8] {
        stored(self.len, &self.bytes)
    }

    /// The number of bytes of [`as_bytes`](ShmBytes::as_bytes).
    ///
    /// ```
    /// assert_eq!(lockkit::ShmBytes::<4>::truncated(b"ab").len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether there are no bytes.
    ///
    /// ```
    /// assert!(lockkit::ShmBytes::<4>::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the stored length is within `N` (false when another process wrote a larger
    /// one, which is read as `N`).
    ///
    /// ```
    /// assert!(lockkit::ShmBytes::<4>::new().is_intact());
    /// ```
    pub fn is_intact(&self) -> bool {
        self.len as usize <= N
    }

    /// Replaces the bytes with `b`, or, if `b` is longer than `N`, leaves them as they were
    /// and returns [`Error::TooLong`].
    ///
    /// ```
    /// let mut v = lockkit::ShmBytes::<2>::new();
    /// assert!(v.set(b"abc").is_err());
    /// v.set(b"ab")?;
    /// assert_eq!(v, &b"ab"[..]);
    /// # Ok::<(), lockkit::Error>(())
    /// ```
    pub fn set(&mut self, b: &[u8]) -> Result<()> {
        if b.len() > N {
            return Err(Error::TooLong {
                len: b.len(),
                capacity: N,
            });
        }
        self.len = store(&mut self.bytes, b);
        Ok(())
    }

    /// Replaces the bytes with the first `N` of `b`; returns whether anything was cut.
    ///
    /// ```
    /// let mut v = lockkit::ShmBytes::<2>::new();
    /// assert!(v.set_truncated(b"abc"));
    /// ```
    pub fn set_truncated(&mut self, b: &[u8]) -> bool {
        let end = b.len().min(N);
        self.len = store(&mut self.bytes, &b[..end]);
        end < b.len()
    }

    /// Appends `b`, or, if the result would exceed `N` bytes, leaves the value as it was and
    /// returns [`Error::TooLong`].
    ///
    /// ```
    /// let mut v = lockkit::ShmBytes::<4>::truncated(b"ab");
    /// v.extend_from_slice(b"cd")?;
    /// assert!(v.extend_from_slice(b"e").is_err());
    /// # Ok::<(), lockkit::Error>(())
    /// ```
    pub fn extend_from_slice(&mut self, b: &[u8]) -> Result<()> {
        let at = self.len();
        let len = at + b.len();
        if len > N {
            return Err(Error::TooLong { len, capacity: N });
        }
        self.len = at as u32 + store(&mut self.bytes[at..], b);
        Ok(())
    }

    /// Empties the value.
    ///
    /// ```
    /// let mut v = lockkit::ShmBytes::<4>::truncated(b"ab");
    /// v.clear();
    /// assert!(v.is_empty());
    /// ```
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

// --- ShmStr: conversions -----------------------------------------------------------------

impl<const N: usize> Default for ShmStr<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> TryFrom<&str> for ShmStr<N> {
    type Error = Error;
    fn try_from(s: &str) -> Result<Self> {
        let mut out = Self::new();
        out.set(s)?;
        Ok(out)
    }
}

impl<const N: usize> FromStr for ShmStr<N> {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::try_from(s)
    }
}

impl<const N: usize> Deref for ShmStr<N> {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl<const N: usize> AsRef<str> for ShmStr<N> {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl<const N: usize> AsRef<[u8]> for ShmStr<N> {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl<const N: usize> Borrow<str> for ShmStr<N> {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl<const N: usize> fmt::Write for ShmStr<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push_str(s).map_err(|_| fmt::Error)
    }
}

impl<const N: usize> fmt::Display for ShmStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

/// The string, quoted; `(damaged)` after it when another process wrote what this type
/// does not (see [`ShmStr::is_intact`]).
impl<const N: usize> fmt::Debug for ShmStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)?;
        if !self.is_intact() {
            f.write_str(" (damaged)")?;
        }
        Ok(())
    }
}

// --- ShmStr: comparisons, all as `as_str` ---------------------------------------------------

impl<const N: usize, const M: usize> PartialEq<ShmStr<M>> for ShmStr<N> {
    fn eq(&self, other: &ShmStr<M>) -> bool {
        self.as_str() == other.as_str()
    }
}
impl<const N: usize> Eq for ShmStr<N> {}

impl<const N: usize, const M: usize> PartialOrd<ShmStr<M>> for ShmStr<N> {
    fn partial_cmp(&self, other: &ShmStr<M>) -> Option<Ordering> {
        Some(self.as_str().cmp(other.as_str()))
    }
}
impl<const N: usize> Ord for ShmStr<N> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

/// The same as `str`'s hash, as `Borrow<str>` requires.
impl<const N: usize> Hash for ShmStr<N> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

macro_rules! str_comparisons {
    ($($other:ty),*) => {$(
        impl<const N: usize> PartialEq<$other> for ShmStr<N> {
            fn eq(&self, other: &$other) -> bool {
                self.as_str() == AsRef::<str>::as_ref(other)
            }
        }
        impl<const N: usize> PartialEq<ShmStr<N>> for $other {
            fn eq(&self, other: &ShmStr<N>) -> bool {
                AsRef::<str>::as_ref(self) == other.as_str()
            }
        }
        impl<const N: usize> PartialOrd<$other> for ShmStr<N> {
            fn partial_cmp(&self, other: &$other) -> Option<Ordering> {
                Some(self.as_str().cmp(AsRef::<str>::as_ref(other)))
            }
        }
        impl<const N: usize> PartialOrd<ShmStr<N>> for $other {
            fn partial_cmp(&self, other: &ShmStr<N>) -> Option<Ordering> {
                Some(AsRef::<str>::as_ref(self).cmp(other.as_str()))
            }
        }
    )*};
}
str_comparisons!(str, &str, String);

// --- ShmBytes: conversions -----------------------------------------------------------------

impl<const N: usize> Default for ShmBytes<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> TryFrom<&[u8]> for ShmBytes<N> {
    type Error = Error;
    fn try_from(b: &[u8]) -> Result<Self> {
        let mut out = Self::new();
        out.set(b)?;
        Ok(out)
    }
}

impl<const N: usize, const M: usize> TryFrom<&[u8; M]> for ShmBytes<N> {
    type Error = Error;
    fn try_from(b: &[u8; M]) -> Result<Self> {
        Self::try_from(&b[..])
    }
}

impl<const N: usize> Deref for ShmBytes<N> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl<const N: usize> AsRef<[u8]> for ShmBytes<N> {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl<const N: usize> Borrow<[u8]> for ShmBytes<N> {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// Escaped ASCII, as [`<[u8]>::escape_ascii`] writes it.
impl<const N: usize> fmt::Display for ShmBytes<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.as_bytes().escape_ascii(), f)
    }
}

/// `b"..."`, escaped; `(damaged)` after it when another process wrote a length above `N`.
impl<const N: usize> fmt::Debug for ShmBytes<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b\"{}\"", self.as_bytes().escape_ascii())?;
        if !self.is_intact() {
            f.write_str(" (damaged)")?;
        }
        Ok(())
    }
}

// --- ShmBytes: comparisons, all as `as_bytes` ------------------------------------------------

impl<const N: usize, const M: usize> PartialEq<ShmBytes<M>> for ShmBytes<N> {
    fn eq(&self, other: &ShmBytes<M>) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}
impl<const N: usize> Eq for ShmBytes<N> {}

impl<const N: usize, const M: usize> PartialOrd<ShmBytes<M>> for ShmBytes<N> {
    fn partial_cmp(&self, other: &ShmBytes<M>) -> Option<Ordering> {
        Some(self.as_bytes().cmp(other.as_bytes()))
    }
}
impl<const N: usize> Ord for ShmBytes<N> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

/// The same as `[u8]`'s hash, as `Borrow<[u8]>` requires.
impl<const N: usize> Hash for ShmBytes<N> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state)
    }
}

macro_rules! bytes_comparisons {
    ($($other:ty),*) => {$(
        impl<const N: usize> PartialEq<$other> for ShmBytes<N> {
            fn eq(&self, other: &$other) -> bool {
                self.as_bytes() == AsRef::<[u8]>::as_ref(other)
            }
        }
        impl<const N: usize> PartialEq<ShmBytes<N>> for $other {
            fn eq(&self, other: &ShmBytes<N>) -> bool {
                AsRef::<[u8]>::as_ref(self) == other.as_bytes()
            }
        }
        impl<const N: usize> PartialOrd<$other> for ShmBytes<N> {
            fn partial_cmp(&self, other: &$other) -> Option<Ordering> {
                Some(self.as_bytes().cmp(AsRef::<[u8]>::as_ref(other)))
            }
        }
        impl<const N: usize> PartialOrd<ShmBytes<N>> for $other {
            fn partial_cmp(&self, other: &ShmBytes<N>) -> Option<Ordering> {
                Some(AsRef::<[u8]>::as_ref(self).cmp(other.as_bytes()))
            }
        }
    )*};
}
bytes_comparisons!([u8], &[u8], Vec<u8>);

impl<const N: usize, const M: usize> PartialEq<[u8; M]> for ShmBytes<N> {
    fn eq(&self, other: &[u8; M]) -> bool {
        self.as_bytes() == other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeSet, HashMap};

    #[test]
    fn zeroed_memory_is_empty() {
        // SAFETY: ShmStr and ShmBytes are ShmZeroable: a u32 and bytes.
        let (s, b): (ShmStr<8>, ShmBytes<8>) = unsafe { std::mem::zeroed() };
        assert_eq!((s.as_str(), s.is_intact()), ("", true));
        assert_eq!((b.as_bytes(), b.is_intact()), (&[][..], true));
    }

    #[test]
    fn a_value_too_long_is_refused_with_both_lengths_and_nothing_stored() {
        let err = ShmStr::<4>::try_from("abcde").unwrap_err();
        assert!(matches!(
            err,
            Error::TooLong {
                len: 5,
                capacity: 4
            }
        ));
        assert!(err
            .to_string()
            .contains("5 bytes do not fit in a capacity of 4"));
        let mut s = ShmStr::<4>::truncated("ab");
        assert!(s.set("abcde").is_err());
        assert!(s.push_str("cde").is_err());
        assert_eq!(s, "ab");
        assert!(ShmBytes::<2>::try_from(b"abc").is_err());
    }

    #[test]
    fn truncation_cuts_at_a_char_boundary_only_when_asked() {
        assert_eq!(ShmStr::<3>::truncated("aé€"), "aé");
        assert_eq!(ShmStr::<5>::truncated("aé€"), "aé"); // € is 3 bytes
        assert_eq!(ShmStr::<6>::truncated("aé€"), "aé€");
        assert_eq!(ShmStr::<0>::truncated("x"), "");
        let mut s = ShmStr::<2>::new();
        assert!(!s.set_truncated("é"));
        assert!(s.set_truncated("éa"));
        assert_eq!(s, "é");
    }

    #[test]
    fn a_damaged_length_is_read_as_the_capacity() {
        let mut s = ShmStr::<4>::truncated("abcd");
        s.len = u32::MAX;
        assert_eq!((s.as_str(), s.len(), s.is_intact()), ("abcd", 4, false));
        assert_eq!(format!("{s:?}"), "\"abcd\" (damaged)");
        let mut b = ShmBytes::<3>::truncated(b"xyz");
        b.len = 4;
        assert_eq!((b.as_bytes(), b.is_intact()), (&b"xyz"[..], false));
        assert_eq!(format!("{b:?}"), "b\"xyz\" (damaged)");
    }

    #[test]
    fn bytes_that_are_not_utf8_end_the_string_at_the_first_bad_one() {
        let mut s = ShmStr::<8>::truncated("abcdef");
        s.bytes[3] = 0xff;
        assert_eq!(
            (s.as_str(), s.as_bytes(), s.is_intact()),
            ("abc", &b"abc"[..], false)
        );
        // Half a character at the end: the whole character is left out.
        let mut t = ShmStr::<8>::truncated("aé");
        t.len = 2;
        assert_eq!(t.as_str(), "a");
        t.bytes = [0xff; 8];
        assert_eq!(t.as_str(), "");
        // Appending to a damaged string starts from what it reads as.
        t.push_str("ok").unwrap();
        assert_eq!((t.as_str(), t.is_intact()), ("ok", true));
    }

    #[test]
    fn comparisons_and_hashes_are_those_of_the_text() {
        let a = ShmStr::<8>::truncated("alice");
        let b = ShmStr::<16>::truncated("alice");
        assert_eq!(a, b);
        assert_eq!(a, "alice");
        assert_eq!("alice", a);
        assert_eq!(a, String::from("alice"));
        assert!(a < ShmStr::<4>::truncated("bob"));
        assert!(a < "bob" && "ab" < a);
        let map: HashMap<ShmStr<8>, u32> = [(a, 1)].into_iter().collect();
        assert_eq!(map.get("alice"), Some(&1));
        let set: BTreeSet<ShmStr<8>> = ["b", "a", "c"]
            .iter()
            .map(|s| ShmStr::truncated(s))
            .collect();
        assert_eq!(set.iter().map(|s| s.as_str()).collect::<String>(), "abc");
        assert_eq!(a.to_string(), "alice");
        assert_eq!(format!("{a:>7}"), "  alice");

        let x = ShmBytes::<4>::truncated(b"\x00\xff");
        assert_eq!(x, &b"\x00\xff"[..]);
        assert_eq!(x, *b"\x00\xff");
        assert_eq!(&b"\x00\xff"[..], x);
        assert_eq!(x, ShmBytes::<8>::truncated(b"\x00\xff"));
        assert!(x > ShmBytes::<8>::truncated(b"\x00"));
        let bmap: HashMap<ShmBytes<4>, u32> = [(x, 2)].into_iter().collect();
        assert_eq!(bmap.get(&b"\x00\xff"[..]), Some(&2));
        assert_eq!(x.to_string(), "\\x00\\xff");
    }

    #[test]
    fn write_formats_into_the_string_until_it_is_full() {
        use std::fmt::Write;
        let mut s = ShmStr::<8>::new();
        let scheme = "sip";
        write!(s, "{scheme}:{}", 42).unwrap();
        assert_eq!(s, "sip:42");
        assert!(write!(s, "{}", 1234).is_err());
    }

    #[test]
    fn each_type_and_capacity_has_its_own_fingerprint() {
        #[derive(crate::ShmSafe)]
        #[repr(C)]
        struct Plain {
            len: u32,
            bytes: [u8; 8],
        }
        let fps = [
            ShmStr::<8>::LAYOUT.fingerprint(),
            ShmStr::<5>::LAYOUT.fingerprint(),
            ShmBytes::<8>::LAYOUT.fingerprint(),
            Plain::LAYOUT.fingerprint(),
        ];
        for i in 0..fps.len() {
            for j in 0..i {
                assert_ne!(fps[i], fps[j], "{i} and {j}");
            }
        }
        assert_eq!(std::mem::size_of::<ShmStr<5>>(), 12);
    }
}
