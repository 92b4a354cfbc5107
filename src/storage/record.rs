//! The thin record: how one key is stored, as a single pointer to a single allocation.
//!
//! ```text
//! [flags:1][lru:3][key len: varint][inline len - 15: varint]?[key][expire ms:8 + volatile index:4]?[payload]
//! ```
//!
//! `flags`: bits 0-1 the payload encoding (inline string, int, slab index),
//! bit 2 "has an expiry", bit 3 the snapshot bit, bits 4-7 depend on the
//! encoding: an inline string's length when it is under 15 (15 means "the
//! length minus 15 follows the key length as a varint", the way Redis's
//! sdshdr5 keeps a short length in its flags byte), the own-int bit of an
//! int, the [`Kind`] of a slab object. Every length is read from the header,
//! so a [`Record`] is one 8-byte pointer (12 bytes with its table tag, where
//! a `Box<[u8]>` took 16 + 4).
//!
//! The allocation is rounded up to the next malloc size class (16n - 8 bytes,
//! glibc's usable chunk sizes, so the rounding costs no memory), and a
//! rewrite whose new contents round to the same class is done in place: SET
//! over a key with a value of similar size neither frees nor allocates.
//!
//! This module is the only one that touches a record's raw memory. Every
//! `unsafe` block relies on the invariant stated on [`Record`], and only the
//! code of this module writes the header bytes that the invariant depends on.

use super::varint;
use std::alloc::{self, Layout};
use std::ptr::NonNull;

use super::value::{Expiry, Kind, NewPayload, Payload};

/// Payload encoding bits of the flags byte.
const ENC_MASK: u8 = 0x03;
/// Payload: the string bytes themselves.
const ENC_INLINE: u8 = 0x00;
/// Payload: an 8-byte little-endian i64.
const ENC_INT: u8 = 0x01;
/// Payload: a 4-byte little-endian slab index.
const ENC_SLAB: u8 = 0x02;
/// The record carries 12 bytes of expiry metadata before its payload.
const HAS_EXPIRE: u8 = 0x04;
/// Snapshot bookkeeping: a record whose bit differs from its database's
/// "fresh" bit has not been serialized by the snapshot in progress.
const SNAP_BIT: u8 = 0x08;
/// (int payloads only) The integer is an object of its own rather than one of
/// Redis's shared integers (a COPY duplicates integers): OBJECT REFCOUNT says 1.
const OWN_INT: u8 = 0x10;
/// Where the encoding-specific nibble starts (inline length, kind).
const NIBBLE_SHIFT: u32 = 4;
/// Inline length nibble meaning "the length minus this follows as a varint".
const NIBBLE_EXT: usize = 15;
/// Bytes of expiry metadata: deadline (8) and volatile index (4).
const EXPIRE_LEN: usize = 12;
/// flags + lru.
const FIXED: usize = 4;
/// Longest header: fixed part and two varints of at most 10 bytes each.
const MAX_HEADER: usize = FIXED + 10 + 10;
/// Smallest allocation; at least `MAX_HEADER`, so the header can always be
/// read from a fixed-size prefix before its lengths are known.
const MIN_ALLOC: usize = 24;

const _: () = assert!(MIN_ALLOC >= MAX_HEADER);

/// Bytes allocated for `used` bytes of contents: the next 16n - 8 size (glibc
/// malloc's usable chunk sizes), at least `MIN_ALLOC`. Always >= `used`.
#[inline]
fn alloc_size(used: usize) -> usize {
    let rounded = used
        .checked_add(8 + 15)
        .expect("record size overflows usize")
        & !15;
    (rounded - 8).max(MIN_ALLOC)
}

/// The layout of a record allocation of `cap` bytes.
#[inline]
fn layout(cap: usize) -> Layout {
    Layout::from_size_align(cap, 1).expect("record size fits a Layout")
}

fn kind_from_bits(b: u8) -> Kind {
    match b {
        0 => Kind::String,
        1 => Kind::List,
        2 => Kind::Set,
        3 => Kind::ZSet,
        4 => Kind::Hash,
        _ => Kind::Stream,
    }
}

/// Where the parts of a record are, as its header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Shape {
    key_at: usize,
    klen: usize,
    /// End of the key: the expiry metadata, if any, starts here.
    body_at: usize,
    payload_at: usize,
    /// End of the contents.
    used: usize,
}

/// Parses a header from a prefix of at least `MAX_HEADER` bytes (or the whole
/// contents). Safe code: on a malformed header it returns bad offsets or panics,
/// never touches memory (the invariant on `Record` rules malformed headers out).
#[inline]
fn shape(h: &[u8]) -> Shape {
    let flags = h[0];
    let (klen, n) = varint::read(&h[FIXED..]);
    let mut key_at = FIXED + n;
    let plen = match flags & ENC_MASK {
        ENC_INT => 8,
        ENC_SLAB => 4,
        _ => {
            let nib = (flags >> NIBBLE_SHIFT) as usize;
            if nib == NIBBLE_EXT {
                let (ext, m) = varint::read(&h[key_at..]);
                key_at += m;
                NIBBLE_EXT + ext
            } else {
                nib
            }
        }
    };
    let body_at = key_at + klen;
    let payload_at = body_at
        + if flags & HAS_EXPIRE != 0 {
            EXPIRE_LEN
        } else {
            0
        };
    Shape {
        key_at,
        klen,
        body_at,
        payload_at,
        used: payload_at + plen,
    }
}

/// A header to write: the flags byte (without snapshot bit) and the lengths.
#[derive(Clone, Copy, Debug)]
struct Plan {
    flags: u8,
    klen: usize,
    /// Inline length beyond the nibble, when the nibble is `NIBBLE_EXT`.
    ext: Option<usize>,
    key_at: usize,
    used: usize,
}

/// The header of a record holding a `klen`-byte key, `payload` and maybe an expiry.
fn plan(klen: usize, payload: &NewPayload<'_>, expiry: bool) -> Plan {
    let (mut flags, plen, ext) = match payload {
        NewPayload::Inline(b) if b.len() < NIBBLE_EXT => {
            (ENC_INLINE | (b.len() as u8) << NIBBLE_SHIFT, b.len(), None)
        }
        NewPayload::Inline(b) => (
            ENC_INLINE | (NIBBLE_EXT as u8) << NIBBLE_SHIFT,
            b.len(),
            Some(b.len() - NIBBLE_EXT),
        ),
        NewPayload::Int(_) => (ENC_INT, 8, None),
        NewPayload::Slab(k, _) => (ENC_SLAB | (*k as u8) << NIBBLE_SHIFT, 4, None),
    };
    if expiry {
        flags |= HAS_EXPIRE;
    }
    let key_at = FIXED + varint::len(klen) + ext.map_or(0, varint::len);
    let used = key_at
        .checked_add(klen)
        .and_then(|n| n.checked_add(plen + if expiry { EXPIRE_LEN } else { 0 }))
        .expect("record size overflows usize");
    Plan {
        flags,
        klen,
        ext,
        key_at,
        used,
    }
}

/// Writes `plan`'s header, then the expiry and payload after the key (which
/// the caller has put, or will put, at `plan.key_at`), then zeroes the rest of `buf`.
fn write_contents(
    buf: &mut [u8],
    plan: &Plan,
    lru: u32,
    expiry: Option<Expiry>,
    payload: &NewPayload<'_>,
) {
    buf[0] = plan.flags;
    buf[1..FIXED].copy_from_slice(&lru.to_le_bytes()[..3]);
    let mut at = FIXED + varint::write(&mut buf[FIXED..], plan.klen);
    if let Some(ext) = plan.ext {
        at += varint::write(&mut buf[at..], ext);
    }
    debug_assert_eq!(at, plan.key_at);
    let mut at = plan.key_at + plan.klen;
    if let Some(e) = expiry {
        buf[at..at + 8].copy_from_slice(&e.at_ms.to_le_bytes());
        buf[at + 8..at + 12].copy_from_slice(&e.volatile_idx.to_le_bytes());
        at += EXPIRE_LEN;
    }
    match payload {
        NewPayload::Inline(b) => {
            buf[at..at + b.len()].copy_from_slice(b);
            at += b.len();
        }
        NewPayload::Int(i) => {
            buf[at..at + 8].copy_from_slice(&i.to_le_bytes());
            at += 8;
        }
        NewPayload::Slab(_, idx) => {
            buf[at..at + 4].copy_from_slice(&idx.to_le_bytes());
            at += 4;
        }
    }
    debug_assert_eq!(at, plan.used);
    buf[at..].fill(0);
}

/// The stored form of one key: see the module docs for the layout.
///
/// Invariant, which every `unsafe` block of this module relies on: `self.0`
/// points to a live allocation of the global allocator with layout
/// `layout(alloc_size(u))`, where `u` is `shape(header).used` for the header
/// currently stored at its start; this record alone owns it; all of its bytes
/// are initialized. Since `alloc_size(u) >= MIN_ALLOC >= MAX_HEADER`, the first
/// `MIN_ALLOC` bytes can always be read to find `u`, and `u <= alloc_size(u)`.
/// Only `write_contents` (from a `Plan` for the same size class), `set_snap_bit`
/// (bit 3), `set_own_int` (bit 4 of an int, whose size does not depend on it) and
/// `set_lru` (bytes 1-3) write the header, so `u`'s size class never changes
/// under an allocation.
pub struct Record(NonNull<u8>);

// SAFETY: a Record owns its allocation alone and has no interior mutability,
// exactly like the `Box<[u8]>` it replaces, which is Send and Sync: moving it
// to another thread moves that ownership, and `&Record` only allows reads.
unsafe impl Send for Record {}
// SAFETY: see Send above.
unsafe impl Sync for Record {}

impl Record {
    /// Builds a record.
    pub fn new(key: &[u8], payload: NewPayload<'_>, expiry: Option<Expiry>, lru: u32) -> Record {
        let plan = plan(key.len(), &payload, expiry.is_some());
        let cap = alloc_size(plan.used);
        let layout = layout(cap);
        // SAFETY: `layout` has a non-zero size (cap >= MIN_ALLOC).
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(ptr) else {
            alloc::handle_alloc_error(layout)
        };
        // SAFETY: `ptr` is a fresh allocation of `cap` bytes, zero-initialized,
        // and nothing else refers to it.
        let buf = unsafe { std::slice::from_raw_parts_mut(ptr.as_ptr(), cap) };
        buf[plan.key_at..plan.key_at + key.len()].copy_from_slice(key);
        write_contents(buf, &plan, lru, expiry, &payload);
        // The header now describes `plan.used` bytes, whose size class is
        // `cap`: the invariant holds from here on (a panic above leaks the
        // allocation, never frees it with a wrong layout).
        Record(ptr)
    }

    /// The first `MIN_ALLOC` bytes: the header and maybe more.
    #[inline]
    fn head(&self) -> &[u8] {
        // SAFETY: by the invariant the allocation has at least MIN_ALLOC
        // bytes, all initialized, and `&self` excludes writers.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr(), MIN_ALLOC) }
    }

    /// The first `MIN_ALLOC` bytes, writable: for the header bits that `shape`
    /// does not read (snapshot bit, own-int bit of an int, LRU), without
    /// parsing the lengths (LRU is written on every read hit).
    #[inline]
    fn head_mut(&mut self) -> &mut [u8] {
        // SAFETY: by the invariant the allocation has at least MIN_ALLOC
        // initialized bytes and this record owns it; `&mut self` makes the
        // slice unique. Callers write only bits `shape` does not read, so the
        // invariant holds (see the invariant on `Record`).
        unsafe { std::slice::from_raw_parts_mut(self.0.as_ptr(), MIN_ALLOC) }
    }

    /// The shape and the `used` bytes of contents.
    #[inline]
    fn view(&self) -> (Shape, &[u8]) {
        let s = shape(self.head());
        // SAFETY: by the invariant `s.used <= alloc_size(s.used)` bytes are
        // allocated and initialized, and `&self` excludes writers.
        let bytes = unsafe { std::slice::from_raw_parts(self.0.as_ptr(), s.used) };
        (s, bytes)
    }

    /// The shape and all `alloc_size(used)` bytes of the allocation, writable.
    #[inline]
    fn view_mut(&mut self) -> (Shape, &mut [u8]) {
        let s = shape(self.head());
        let cap = alloc_size(s.used);
        // SAFETY: by the invariant the allocation has exactly `cap` initialized
        // bytes and this record owns it; `&mut self` makes the slice unique.
        // Callers keep the invariant: they write the header only through
        // `write_contents` with a plan of the same size class, or bits that
        // `shape` does not read (see the invariant).
        let bytes = unsafe { std::slice::from_raw_parts_mut(self.0.as_ptr(), cap) };
        (s, bytes)
    }

    #[inline]
    fn flags(&self) -> u8 {
        self.head()[0]
    }

    /// The record rebuilt with other expiry metadata (same key, payload, LRU and own-int bit).
    pub fn with_expiry(&self, expiry: Option<Expiry>) -> Record {
        let mut r = Record::new(self.key(), self.new_payload(), expiry, self.lru());
        r.set_own_int(self.own_int());
        r
    }

    /// Replaces payload, expiry and LRU, keeping the key: in place when the new
    /// contents round to the same allocation size, else in a new allocation.
    /// The own-int and snapshot bits are cleared, as on a new record.
    pub fn replace(&mut self, payload: NewPayload<'_>, expiry: Option<Expiry>, lru: u32) {
        let (old, _) = self.view();
        let plan = plan(old.klen, &payload, expiry.is_some());
        if alloc_size(plan.used) != alloc_size(old.used) {
            let r = Record::new(self.key(), payload, expiry, lru);
            *self = r;
            return;
        }
        let (_, buf) = self.view_mut();
        // Between these two calls the header may be half overwritten by the
        // moved key; nothing can panic there (every index `write_contents`
        // uses is below `plan.used <= buf.len()`), so no unwinding drop can
        // see it, and afterwards the header describes `plan.used`, whose size
        // class is this allocation's: the invariant holds again.
        buf.copy_within(old.key_at..old.body_at, plan.key_at);
        write_contents(buf, &plan, lru, expiry, &payload);
    }

    /// True for an int payload that is not a shared integer (see `OWN_INT`).
    #[inline]
    pub fn own_int(&self) -> bool {
        let f = self.flags();
        f & ENC_MASK == ENC_INT && f & OWN_INT != 0
    }

    /// Marks an int payload as an object of its own, or not (no effect on other payloads).
    #[inline]
    pub fn set_own_int(&mut self, on: bool) {
        let buf = self.head_mut();
        // Only for ints: on inline strings the bit is part of the length nibble.
        if buf[0] & ENC_MASK == ENC_INT {
            if on {
                buf[0] |= OWN_INT;
            } else {
                buf[0] &= !OWN_INT;
            }
        }
    }

    fn new_payload(&self) -> NewPayload<'_> {
        match self.payload() {
            Payload::Inline(b) => NewPayload::Inline(b),
            Payload::Int(i) => NewPayload::Int(i),
            Payload::Slab(i) => NewPayload::Slab(self.kind(), i),
        }
    }

    /// The key.
    #[inline]
    pub fn key(&self) -> &[u8] {
        let (s, b) = self.view();
        &b[s.key_at..s.body_at]
    }

    /// The value's type.
    #[inline]
    pub fn kind(&self) -> Kind {
        let f = self.flags();
        if f & ENC_MASK == ENC_SLAB {
            kind_from_bits((f >> NIBBLE_SHIFT) & 0x07)
        } else {
            Kind::String
        }
    }

    /// Expiry metadata, if the key has a TTL.
    #[inline]
    pub fn expiry(&self) -> Option<Expiry> {
        if self.flags() & HAS_EXPIRE == 0 {
            return None;
        }
        let (s, b) = self.view();
        let b = &b[s.body_at..s.payload_at];
        Some(Expiry {
            at_ms: u64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
            volatile_idx: u32::from_le_bytes(b[8..12].try_into().expect("4 bytes")),
        })
    }

    /// The absolute expiry time in ms, if any.
    #[inline]
    pub fn expire_at(&self) -> Option<u64> {
        self.expiry().map(|e| e.at_ms)
    }

    /// Rewrites the expiry metadata in place; the record must already have a TTL.
    pub fn set_expiry_in_place(&mut self, e: Expiry) {
        assert!(self.flags() & HAS_EXPIRE != 0, "record without expiry");
        let (s, buf) = self.view_mut();
        let at = s.body_at;
        buf[at..at + 8].copy_from_slice(&e.at_ms.to_le_bytes());
        buf[at + 8..at + 12].copy_from_slice(&e.volatile_idx.to_le_bytes());
    }

    /// The payload.
    #[inline]
    pub fn payload(&self) -> Payload<'_> {
        let (s, b) = self.view();
        let p = &b[s.payload_at..];
        match b[0] & ENC_MASK {
            ENC_INT => Payload::Int(i64::from_le_bytes(p[..8].try_into().expect("8 bytes"))),
            ENC_SLAB => Payload::Slab(u32::from_le_bytes(p[..4].try_into().expect("4 bytes"))),
            _ => Payload::Inline(p),
        }
    }

    /// Overwrites an int payload in place (INCR on an int-encoded value); false for other payloads.
    pub fn set_int_in_place(&mut self, v: i64) -> bool {
        let (s, buf) = self.view_mut();
        if buf[0] & ENC_MASK != ENC_INT {
            return false;
        }
        buf[s.payload_at..s.payload_at + 8].copy_from_slice(&v.to_le_bytes());
        // A new value is a new (possibly shared) integer, as INCR makes it.
        buf[0] &= !OWN_INT;
        true
    }

    /// The snapshot bit (see `SNAP_BIT`).
    #[inline]
    pub fn snap_bit(&self) -> bool {
        self.flags() & SNAP_BIT != 0
    }

    /// Sets the snapshot bit.
    #[inline]
    pub fn set_snap_bit(&mut self, on: bool) {
        let buf = self.head_mut();
        if on {
            buf[0] |= SNAP_BIT;
        } else {
            buf[0] &= !SNAP_BIT;
        }
    }

    /// The 24-bit LRU/LFU field.
    #[inline]
    pub fn lru(&self) -> u32 {
        let h = self.head();
        u32::from_le_bytes([h[1], h[2], h[3], 0])
    }

    /// Sets the 24-bit LRU/LFU field.
    #[inline]
    pub fn set_lru(&mut self, v: u32) {
        let buf = self.head_mut();
        buf[1..FIXED].copy_from_slice(&v.to_le_bytes()[..3]);
    }

    /// Bytes of the record allocation.
    pub fn alloc_len(&self) -> usize {
        alloc_size(shape(self.head()).used)
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        let cap = self.alloc_len();
        // SAFETY: by the invariant the allocation was made by the global
        // allocator with `layout(cap)` and is owned by this record alone,
        // which is not used after this.
        unsafe { alloc::dealloc(self.0.as_ptr(), layout(cap)) }
    }
}

impl Clone for Record {
    fn clone(&self) -> Record {
        let (_, bytes) = self.view();
        let cap = alloc_size(bytes.len());
        let layout = layout(cap);
        // SAFETY: `layout` has a non-zero size (cap >= MIN_ALLOC).
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(ptr) else {
            alloc::handle_alloc_error(layout)
        };
        // SAFETY: a fresh, zeroed allocation of `cap` bytes that nothing else refers to.
        let buf = unsafe { std::slice::from_raw_parts_mut(ptr.as_ptr(), cap) };
        // Same header and contents, and the rest zero as `write_contents` leaves it:
        // the invariant holds for the copy.
        buf[..bytes.len()].copy_from_slice(bytes);
        Record(ptr)
    }
}

impl PartialEq for Record {
    fn eq(&self, other: &Record) -> bool {
        self.view().1 == other.view().1
    }
}

impl Eq for Record {}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("key", &String::from_utf8_lossy(self.key()))
            .field("kind", &self.kind())
            .field("payload", &self.payload())
            .field("expiry", &self.expiry())
            .field("lru", &self.lru())
            .field("snap", &self.snap_bit())
            .finish()
    }
}

impl super::table::Keyed for Record {
    #[inline]
    fn key(&self) -> &[u8] {
        Record::key(self)
    }

    /// Asks the CPU for the record's first two cache lines (header, key and
    /// a small value) without waiting for them.
    #[inline]
    fn prefetch(&self) {
        let p = self.0.as_ptr();
        super::table::prefetch_line(p);
        // `wrapping_add`: the address may lie past the record; it is only a hint.
        super::table::prefetch_line(p.wrapping_add(64));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS: [Kind; 6] = [
        Kind::String,
        Kind::List,
        Kind::Set,
        Kind::ZSet,
        Kind::Hash,
        Kind::Stream,
    ];

    /// Every accessor agrees with what the record was built from.
    fn check(
        r: &Record,
        key: &[u8],
        payload: Payload<'_>,
        kind: Kind,
        e: Option<Expiry>,
        lru: u32,
    ) {
        assert_eq!(r.key(), key);
        assert_eq!(r.payload(), payload);
        assert_eq!(r.kind(), kind);
        assert_eq!(r.expiry(), e);
        assert_eq!(r.lru(), lru);
        let used = shape(r.head()).used;
        assert!(r.alloc_len() >= used && r.alloc_len() >= MIN_ALLOC);
        assert_eq!((r.alloc_len() + 8) % 16, 0, "a malloc size class");
        assert_eq!(r.clone(), *r);
    }

    #[test]
    fn size_classes() {
        assert_eq!(alloc_size(0), 24);
        assert_eq!(alloc_size(24), 24);
        assert_eq!(alloc_size(25), 40);
        assert_eq!(alloc_size(40), 40);
        assert_eq!(alloc_size(41), 56);
        assert_eq!(alloc_size(56), 56);
        assert_eq!(alloc_size(57), 72);
    }

    #[test]
    fn boundary_lengths_of_keys_and_inline_values() {
        let lens = [
            0usize,
            1,
            14,
            15,
            16,
            44,
            127,
            128,
            142,
            143,
            16383,
            16384,
            16398,
            16399,
            1 << 21,
        ];
        let e = Expiry {
            at_ms: u64::MAX - 1,
            volatile_idx: u32::MAX,
        };
        let vals: Vec<Vec<u8>> = lens
            .iter()
            .map(|&n| (0..n).map(|i| (i % 241) as u8 ^ 0x5a).collect())
            .collect();
        for &kl in &lens {
            let key: Vec<u8> = (0..kl).map(|i| (i % 251) as u8).collect();
            for val in &vals {
                for exp in [None, Some(e)] {
                    let r = Record::new(&key, NewPayload::Inline(val), exp, 0xfedcba);
                    check(&r, &key, Payload::Inline(val), Kind::String, exp, 0xfedcba);
                    assert!(!r.own_int());
                }
            }
        }
    }

    #[test]
    fn every_type_and_payload() {
        for kl in [0usize, 127, 128, 16383, 16384] {
            let key = vec![b'k'; kl];
            for exp in [
                None,
                Some(Expiry {
                    at_ms: 1,
                    volatile_idx: 2,
                }),
            ] {
                for kind in KINDS {
                    let r = Record::new(&key, NewPayload::Slab(kind, 0xdead_beef), exp, 7);
                    check(&r, &key, Payload::Slab(0xdead_beef), kind, exp, 7);
                }
                for i in [0, -1, i64::MIN, i64::MAX] {
                    let r = Record::new(&key, NewPayload::Int(i), exp, 0);
                    check(&r, &key, Payload::Int(i), Kind::String, exp, 0);
                }
            }
        }
    }

    #[test]
    fn flag_bits_leave_the_shape_alone() {
        // The bits other code may flip never change where anything is.
        for val in [&b""[..], b"abc", &[b'x'; 14], &[b'x'; 15], &[b'y'; 44]] {
            let mut r = Record::new(b"key:000000000001", NewPayload::Inline(val), None, 0);
            let s = shape(r.head());
            r.set_snap_bit(true);
            assert!(r.snap_bit());
            r.set_own_int(true);
            assert!(!r.own_int(), "only ints have the bit");
            r.set_own_int(false);
            r.set_lru(0xff_ffff);
            assert!(!r.set_int_in_place(5));
            assert_eq!(shape(r.head()), s);
            assert_eq!(r.payload(), Payload::Inline(val));
            r.set_snap_bit(false);
            assert!(!r.snap_bit());
            assert_eq!(r.lru(), 0xff_ffff);
        }
        let mut r = Record::new(b"n", NewPayload::Int(-42), None, 0);
        r.set_own_int(true);
        assert!(r.own_int());
        assert!(r.set_int_in_place(i64::MAX));
        assert!(!r.own_int(), "INCR makes a shared integer");
        assert_eq!(r.payload(), Payload::Int(i64::MAX));
        let r2 = r.with_expiry(None);
        assert_eq!(r2, r);
    }

    #[test]
    fn expiry_in_place_and_rebuilt() {
        let r = Record::new(b"key:1", NewPayload::Inline(b"hello"), None, 0xabcdef);
        assert_eq!(r.alloc_len(), 24);
        let e = Expiry {
            at_ms: 1_700_000_000_123,
            volatile_idx: 7,
        };
        let mut r2 = r.with_expiry(Some(e));
        check(
            &r2,
            b"key:1",
            Payload::Inline(b"hello"),
            Kind::String,
            Some(e),
            0xabcdef,
        );
        let e2 = Expiry {
            at_ms: 5,
            volatile_idx: 1,
        };
        r2.set_expiry_in_place(e2);
        assert_eq!(r2.expiry(), Some(e2));
        assert_eq!(r2.payload(), Payload::Inline(b"hello"));
        assert_eq!(r2.with_expiry(None), r);
    }

    #[test]
    fn replace_in_place_or_reallocated() {
        let key = b"key:000000000042";
        let e = Expiry {
            at_ms: 99,
            volatile_idx: 3,
        };
        let payloads: Vec<Vec<u8>> = [0usize, 3, 14, 15, 16, 32, 44, 200, 20_000]
            .iter()
            .map(|&n| vec![b'v'; n])
            .collect();
        for a in &payloads {
            for b in &payloads {
                for (ea, eb) in [
                    (None, None),
                    (Some(e), Some(e)),
                    (None, Some(e)),
                    (Some(e), None),
                ] {
                    let mut r = Record::new(key, NewPayload::Inline(a), ea, 1);
                    r.set_snap_bit(true);
                    let before = r.0;
                    let same_class =
                        alloc_size(plan(key.len(), &NewPayload::Inline(b), eb.is_some()).used)
                            == r.alloc_len();
                    r.replace(NewPayload::Inline(b), eb, 2);
                    check(&r, key, Payload::Inline(b), Kind::String, eb, 2);
                    assert!(!r.snap_bit());
                    if same_class {
                        assert_eq!(r.0, before, "rewritten in place");
                    }
                    r.replace(NewPayload::Int(-7), None, 3);
                    check(&r, key, Payload::Int(-7), Kind::String, None, 3);
                    r.replace(NewPayload::Slab(Kind::Hash, 9), eb, 4);
                    check(&r, key, Payload::Slab(9), Kind::Hash, eb, 4);
                }
            }
        }
    }

    #[test]
    fn a_record_is_one_pointer() {
        assert_eq!(std::mem::size_of::<Record>(), 8);
        assert_eq!(std::mem::size_of::<Option<Record>>(), 8);
    }
}
