//! `ShmStr` and `ShmBytes` as fields of shared structs: written by one process, read by
//! another that attached to the region by name, and damaged on purpose by a third. A read
//! of damaged bytes returns what the types document, never panics.

mod common;

use common::{fork, serial, unique_name};
use lockkit::{shared_locked, Error, GenLock, ShmBytes, ShmMutex, ShmRegion, ShmSafe, ShmStr};

/// A registrar's binding, as an application would declare it.
#[derive(ShmSafe, Clone, Copy, Default, Debug, PartialEq)]
#[repr(C)]
struct Binding {
    aor: ShmStr<32>,
    contact: ShmStr<64>,
    instance: ShmBytes<16>,
    expires: u32,
}

type Table = ShmMutex<[Binding; 4]>;

/// Writes garbage into `b` the way a buggy or half-killed process could: a length far past
/// the capacity for the contact and instance, and a byte that is not UTF-8 in the AOR.
fn damage(b: &mut Binding) {
    let aor = std::mem::offset_of!(Binding, aor);
    let contact = std::mem::offset_of!(Binding, contact);
    let instance = std::mem::offset_of!(Binding, instance);
    let p = (b as *mut Binding).cast::<u8>();
    // SAFETY: `p` comes from a `&mut Binding`; each write stays inside the field it names
    // (ShmStr and ShmBytes are repr(C): a u32 length, then the bytes), and any u32 or u8 is
    // a valid value there.
    unsafe {
        p.add(contact).cast::<u32>().write_unaligned(u32::MAX);
        p.add(instance).cast::<u32>().write_unaligned(1 << 20);
        p.add(aor + 4 + 3).write(0xC3); // the first byte of a 2-byte char, then 'a'
    }
}

#[test]
fn strings_written_by_one_process_are_read_by_another_that_attached_by_name() {
    let _s = serial();
    let name = unique_name("shm-str");
    let region = ShmRegion::create(&name, 1 << 16).unwrap();
    let table = region.alloc_zeroed::<Table>().unwrap();
    region.publish("bindings", &table).unwrap();
    table.lock()[0] = Binding {
        aor: "sip:alice@example.org".try_into().unwrap(),
        contact: ShmStr::truncated("sip:alice@192.0.2.1:5060"),
        instance: ShmBytes::try_from(&[0xde, 0xad, 0xbe, 0xef]).unwrap(),
        expires: 3600,
    };

    let reader = fork(|| {
        let region = ShmRegion::open(&name).expect("attach by name");
        let table = region.lookup::<Table>("bindings").expect("find the table");
        let mut t = table.lock();
        let b = t[0];
        let ok = b.aor == "sip:alice@example.org"
            && b.contact.as_str() == "sip:alice@192.0.2.1:5060"
            && b.instance == [0xde, 0xad, 0xbe, 0xef]
            && b.expires == 3600
            && t[1].aor.is_empty();
        if !ok {
            return 2;
        }
        // An answer, and a binding this process cannot fit without being told.
        t[1].aor.set("sip:bob@example.org").unwrap();
        let too_long = t[1].contact.set(&"x".repeat(65));
        if !matches!(
            too_long,
            Err(Error::TooLong {
                len: 65,
                capacity: 64
            })
        ) {
            return 3;
        }
        t[1].contact = ShmStr::truncated(&"é".repeat(40)); // 80 bytes: cut to 32 chars
        0
    });
    assert_eq!(reader.join(), 0);
    let t = table.lock();
    assert_eq!(t[1].aor, "sip:bob@example.org");
    assert_eq!(t[1].contact.len(), 64);
    assert_eq!(t[1].contact.chars().count(), 32);
    assert!(t[1].contact.is_intact());
}

#[test]
fn another_processs_garbage_reads_as_documented() {
    let _s = serial();
    let name = unique_name("shm-str-garbage");
    let region = ShmRegion::create(&name, 1 << 16).unwrap();
    let table = region.alloc_zeroed::<Table>().unwrap();
    region.publish("bindings", &table).unwrap();
    {
        let mut t = table.lock();
        t[2].aor.set("sip:carol@example.org").unwrap();
        t[2].contact.set("sip:carol@198.51.100.7").unwrap();
        t[2].instance.set(b"inst-7").unwrap();
    }
    let vandal = fork(|| {
        let region = ShmRegion::open(&name).expect("attach by name");
        let table = region.lookup::<Table>("bindings").expect("find the table");
        damage(&mut table.lock()[2]);
        0
    });
    assert_eq!(vandal.join(), 0);

    let t = table.lock();
    let b = &t[2];
    // The AOR stops before the byte that starts no valid character.
    assert_eq!(b.aor.as_str(), "sip");
    assert!(!b.aor.is_intact());
    // A length past the capacity reads as the capacity: the contact, then the bytes after
    // it up to 64 (zeroed memory here, as NUL characters).
    let contact = b.contact.as_str();
    assert_eq!(contact.len(), 64);
    assert!(contact.starts_with("sip:carol@198.51.100.7"));
    assert!(!b.contact.is_intact());
    assert_eq!(b.instance.len(), 16);
    assert!(b.instance.starts_with(b"inst-7"));
    assert!(!b.instance.is_intact());
    // Every reading the types offer stays defined.
    let shown = format!("{b:?} {} {}", b.aor, b.instance);
    assert!(shown.contains("(damaged)"), "{shown}");
    assert!(b.aor < b.contact && b.aor != "sip:carol@example.org");
}

/// A `#[shared_locked]` record whose guarded fields are strings.
#[shared_locked]
pub struct Registration {
    lock: GenLock,
    #[guarded_by(lock)]
    user: ShmStr<24>,
    #[guarded_by(lock)]
    tag: ShmBytes<8>,
}

#[test]
fn a_shared_locked_struct_guards_string_fields() {
    let _s = serial();
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let reg = region.alloc_zeroed::<Registration>().unwrap();
    let reg = &*reg;
    let child = fork(|| {
        let mut g = reg.lock_lock();
        g.user.set("alice").unwrap();
        g.tag = ShmBytes::truncated(b"\x01\x02\x03");
        0
    });
    assert_eq!(child.join(), 0);
    let g = reg.lock_lock();
    assert_eq!(
        (g.user.as_str(), g.tag.as_bytes()),
        ("alice", &b"\x01\x02\x03"[..])
    );
    // `new` is const, and takes the strings by value.
    static _EMPTY: Registration = Registration::new(ShmStr::new(), ShmBytes::new());
}
