//! How one key is stored: a single compact record holding key, metadata and small values.
//!
//! A record is one heap allocation (`Box<[u8]>`):
//!
//! ```text
//! [flags:1][lru:3][key len: varint][key][expire ms:8 + volatile index:4]?[payload]
//! ```
//!
//! The payload is the string itself for short strings (Redis's `embstr`,
//! up to 44 bytes), 8 bytes for integers (`int`), or a 4-byte index into the
//! database's object slab for everything that is big or mutable in place:
//! `raw` strings (over 44 bytes, or after APPEND/SETRANGE, as in Redis) and
//! collections. So a typical small key/value pair costs one allocation
//! plus its table slot, where Redis spends four allocations.

/// Strings up to this length are stored inside the record (Redis's embstr limit).
pub const EMBSTR_MAX: usize = 44;

/// The Redis type of a value, as TYPE reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// A string (int, embstr or raw).
    String = 0,
    /// A list.
    List = 1,
    /// A set.
    Set = 2,
    /// A sorted set.
    ZSet = 3,
    /// A hash.
    Hash = 4,
    /// A stream.
    Stream = 5,
}

impl Kind {
    /// The name TYPE replies with.
    pub fn name(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::List => "list",
            Kind::Set => "set",
            Kind::ZSet => "zset",
            Kind::Hash => "hash",
            Kind::Stream => "stream",
        }
    }

    fn from_bits(b: u8) -> Kind {
        match b & KIND_MASK {
            0 => Kind::String,
            1 => Kind::List,
            2 => Kind::Set,
            3 => Kind::ZSet,
            4 => Kind::Hash,
            _ => Kind::Stream,
        }
    }
}

const KIND_MASK: u8 = 0x07;
const HAS_EXPIRE: u8 = 0x08;
const PAYLOAD_MASK: u8 = 0x30;
/// Payload is the string bytes themselves.
const PAYLOAD_INLINE: u8 = 0x00;
/// Payload is an 8-byte little-endian i64.
const PAYLOAD_INT: u8 = 0x10;
/// Payload is a 4-byte slab index.
const PAYLOAD_SLAB: u8 = 0x20;

/// An int payload that is an object of its own rather than one of Redis's
/// shared integers (a COPY duplicates integers): OBJECT REFCOUNT says 1 for it.
const OWN_INT: u8 = 0x40;

/// Snapshot bookkeeping: a record whose bit differs from its database's
/// "fresh" bit has not been serialized by the snapshot in progress.
const SNAP_BIT: u8 = 0x80;

const EXPIRE_LEN: usize = 12;

/// What a record's payload is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload<'a> {
    /// A string stored inline.
    Inline(&'a [u8]),
    /// An integer-encoded string.
    Int(i64),
    /// An object in the database's slab.
    Slab(u32),
}

/// The stored form of one key: see the module docs for the layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record(Box<[u8]>);

impl super::table::Keyed for Record {
    #[inline]
    fn key(&self) -> &[u8] {
        let (len, n) = read_varint(&self.0[4..]);
        &self.0[4 + n..4 + n + len]
    }
}

#[inline]
fn read_varint(b: &[u8]) -> (usize, usize) {
    let mut v = 0usize;
    let mut shift = 0;
    for (i, &byte) in b.iter().enumerate() {
        v |= ((byte & 0x7f) as usize) << shift;
        if byte & 0x80 == 0 {
            return (v, i + 1);
        }
        shift += 7;
    }
    (v, b.len())
}

#[inline]
fn varint_len(mut v: usize) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn push_varint(out: &mut Vec<u8>, mut v: usize) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Expiry metadata of a record: the deadline and the key's slot in the volatile index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expiry {
    /// Absolute Unix time in milliseconds.
    pub at_ms: u64,
    /// Index of the key in its database's volatile-key list.
    pub volatile_idx: u32,
}

/// A payload to build a record with.
#[derive(Clone, Copy, Debug)]
pub enum NewPayload<'a> {
    /// Store these bytes inline (callers keep them <= EMBSTR_MAX).
    Inline(&'a [u8]),
    /// Store an integer.
    Int(i64),
    /// Point at a slab object of this kind.
    Slab(Kind, u32),
}

impl Record {
    /// Builds a record.
    pub fn new(key: &[u8], payload: NewPayload<'_>, expiry: Option<Expiry>, lru: u32) -> Record {
        let (flags, plen) = match payload {
            NewPayload::Inline(b) => (Kind::String as u8 | PAYLOAD_INLINE, b.len()),
            NewPayload::Int(_) => (Kind::String as u8 | PAYLOAD_INT, 8),
            NewPayload::Slab(k, _) => (k as u8 | PAYLOAD_SLAB, 4),
        };
        let flags = flags | if expiry.is_some() { HAS_EXPIRE } else { 0 };
        let total = 4
            + varint_len(key.len())
            + key.len()
            + if expiry.is_some() { EXPIRE_LEN } else { 0 }
            + plen;
        let mut v = Vec::with_capacity(total);
        v.push(flags);
        v.extend_from_slice(&lru.to_le_bytes()[..3]);
        push_varint(&mut v, key.len());
        v.extend_from_slice(key);
        if let Some(e) = expiry {
            v.extend_from_slice(&e.at_ms.to_le_bytes());
            v.extend_from_slice(&e.volatile_idx.to_le_bytes());
        }
        match payload {
            NewPayload::Inline(b) => v.extend_from_slice(b),
            NewPayload::Int(i) => v.extend_from_slice(&i.to_le_bytes()),
            NewPayload::Slab(_, idx) => v.extend_from_slice(&idx.to_le_bytes()),
        }
        debug_assert_eq!(v.len(), total);
        Record(v.into_boxed_slice())
    }

    /// The record rebuilt with other expiry metadata (same key and payload).
    pub fn with_expiry(&self, expiry: Option<Expiry>) -> Record {
        let mut r = Record::new(self.key(), self.new_payload(), expiry, self.lru());
        r.set_own_int(self.own_int());
        r
    }

    /// The record rebuilt under another key (same payload), for RENAME/MOVE/COPY.
    pub fn with_key(&self, key: &[u8], expiry: Option<Expiry>) -> Record {
        let mut r = Record::new(key, self.new_payload(), expiry, self.lru());
        r.set_own_int(self.own_int());
        r
    }

    /// True for an int payload that is not a shared integer (see `OWN_INT`).
    #[inline]
    pub fn own_int(&self) -> bool {
        self.0[0] & OWN_INT != 0
    }

    /// Marks an int payload as an object of its own, or not.
    #[inline]
    pub fn set_own_int(&mut self, on: bool) {
        if on && self.0[0] & PAYLOAD_MASK == PAYLOAD_INT {
            self.0[0] |= OWN_INT;
        } else {
            self.0[0] &= !OWN_INT;
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
        super::table::Keyed::key(self)
    }

    #[inline]
    fn key_end(&self) -> usize {
        let (len, n) = read_varint(&self.0[4..]);
        4 + n + len
    }

    /// The value's type.
    #[inline]
    pub fn kind(&self) -> Kind {
        Kind::from_bits(self.0[0])
    }

    /// Expiry metadata, if the key has a TTL.
    #[inline]
    pub fn expiry(&self) -> Option<Expiry> {
        if self.0[0] & HAS_EXPIRE == 0 {
            return None;
        }
        let at = self.key_end();
        let b = &self.0[at..at + EXPIRE_LEN];
        Some(Expiry {
            at_ms: u64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
            volatile_idx: u32::from_le_bytes(b[8..].try_into().expect("4 bytes")),
        })
    }

    /// The absolute expiry time in ms, if any.
    #[inline]
    pub fn expire_at(&self) -> Option<u64> {
        self.expiry().map(|e| e.at_ms)
    }

    /// Rewrites the expiry metadata in place; the record must already have a TTL.
    pub fn set_expiry_in_place(&mut self, e: Expiry) {
        debug_assert!(self.0[0] & HAS_EXPIRE != 0);
        let at = self.key_end();
        self.0[at..at + 8].copy_from_slice(&e.at_ms.to_le_bytes());
        self.0[at + 8..at + 12].copy_from_slice(&e.volatile_idx.to_le_bytes());
    }

    #[inline]
    fn payload_start(&self) -> usize {
        self.key_end()
            + if self.0[0] & HAS_EXPIRE != 0 {
                EXPIRE_LEN
            } else {
                0
            }
    }

    /// The payload.
    #[inline]
    pub fn payload(&self) -> Payload<'_> {
        let p = &self.0[self.payload_start()..];
        match self.0[0] & PAYLOAD_MASK {
            PAYLOAD_INT => Payload::Int(i64::from_le_bytes(p[..8].try_into().expect("8 bytes"))),
            PAYLOAD_SLAB => Payload::Slab(u32::from_le_bytes(p[..4].try_into().expect("4 bytes"))),
            _ => Payload::Inline(p),
        }
    }

    /// Overwrites an int payload in place (INCR on an int-encoded value).
    pub fn set_int_in_place(&mut self, v: i64) -> bool {
        if self.0[0] & PAYLOAD_MASK != PAYLOAD_INT {
            return false;
        }
        let at = self.payload_start();
        self.0[at..at + 8].copy_from_slice(&v.to_le_bytes());
        // A new value is a new (possibly shared) integer, as INCR makes it.
        self.0[0] &= !OWN_INT;
        true
    }

    /// The snapshot bit (see `SNAP_BIT`).
    #[inline]
    pub fn snap_bit(&self) -> bool {
        self.0[0] & SNAP_BIT != 0
    }

    /// Sets the snapshot bit.
    #[inline]
    pub fn set_snap_bit(&mut self, on: bool) {
        if on {
            self.0[0] |= SNAP_BIT;
        } else {
            self.0[0] &= !SNAP_BIT;
        }
    }

    /// The 24-bit LRU/LFU field.
    #[inline]
    pub fn lru(&self) -> u32 {
        u32::from_le_bytes([self.0[1], self.0[2], self.0[3], 0])
    }

    /// Sets the 24-bit LRU/LFU field.
    #[inline]
    pub fn set_lru(&mut self, v: u32) {
        let b = v.to_le_bytes();
        self.0[1..4].copy_from_slice(&b[..3]);
    }

    /// Bytes of the record allocation.
    pub fn alloc_len(&self) -> usize {
        self.0.len()
    }
}

/// A string value as stored: integers stay integers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StrRef<'a> {
    /// An int-encoded value.
    Int(i64),
    /// The bytes of the value.
    Bytes(&'a [u8]),
}

impl StrRef<'_> {
    /// The value's length in bytes (as STRLEN reports it).
    pub fn len(&self) -> usize {
        match self {
            StrRef::Int(i) => crate::util::num::format_i64(*i, &mut [0; 24]).len(),
            StrRef::Bytes(b) => b.len(),
        }
    }

    /// True for the empty string.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `f` with the value's bytes (formatting an integer on the stack).
    pub fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            StrRef::Int(i) => f(crate::util::num::format_i64(*i, &mut [0; 24])),
            StrRef::Bytes(b) => f(b),
        }
    }

    /// The value as an owned byte vector.
    pub fn to_vec(&self) -> Vec<u8> {
        self.with_bytes(|b| b.to_vec())
    }
}

/// Values stored out of line, in the database's slab.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    /// A `raw` string: long, or grown in place by APPEND/SETRANGE.
    RawStr(Vec<u8>),
    /// A hash.
    Hash(super::hash::HashValue),
    /// A list.
    List(super::list::ListValue),
    /// A set.
    Set(super::set::SetValue),
    /// A sorted set.
    ZSet(super::zset::ZSetValue),
}

impl Object {
    /// The Redis type of the object.
    pub fn kind(&self) -> Kind {
        match self {
            Object::RawStr(_) => Kind::String,
            Object::Hash(_) => Kind::Hash,
            Object::List(_) => Kind::List,
            Object::Set(_) => Kind::Set,
            Object::ZSet(_) => Kind::ZSet,
        }
    }

    /// The OBJECT ENCODING name.
    pub fn encoding_name(&self) -> &'static str {
        match self {
            Object::RawStr(_) => "raw",
            Object::Hash(v) => v.encoding_name(),
            Object::List(v) => v.encoding_name(),
            Object::Set(v) => v.encoding_name(),
            Object::ZSet(v) => v.encoding_name(),
        }
    }

    /// Number of elements of a collection (0 for strings).
    pub fn len(&self) -> usize {
        match self {
            Object::RawStr(_) => 0,
            Object::Hash(v) => v.len(),
            Object::List(v) => v.len(),
            Object::Set(v) => v.len(),
            Object::ZSet(v) => v.len(),
        }
    }

    /// True for an empty collection.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Approximate heap bytes used (for MEMORY USAGE and accounting).
    pub fn heap_size(&self) -> usize {
        match self {
            Object::RawStr(v) => v.capacity(),
            Object::Hash(v) => v.heap_size(),
            Object::List(v) => v.heap_size(),
            Object::Set(v) => v.heap_size(),
            Object::ZSet(v) => v.heap_size(),
        }
    }
}

/// A value detached from any database: what RENAME/MOVE/COPY carry between shards.
#[derive(Debug, Clone, PartialEq)]
pub enum OwnedValue {
    /// An integer-encoded string.
    Int(i64),
    /// An integer-encoded string that is not a shared integer (a COPY's value).
    OwnInt(i64),
    /// A short string (stored inline).
    Inline(Vec<u8>),
    /// Anything stored in the slab.
    Object(Object),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips() {
        let r = Record::new(b"key:1", NewPayload::Inline(b"hello"), None, 0xabcdef);
        assert_eq!(r.key(), b"key:1");
        assert_eq!(r.kind(), Kind::String);
        assert_eq!(r.payload(), Payload::Inline(b"hello"));
        assert_eq!(r.expiry(), None);
        assert_eq!(r.lru(), 0xabcdef);
        assert_eq!(r.alloc_len(), 4 + 1 + 5 + 5);

        let e = Expiry {
            at_ms: 1_700_000_000_123,
            volatile_idx: 7,
        };
        let mut r2 = r.with_expiry(Some(e));
        assert_eq!(r2.key(), b"key:1");
        assert_eq!(r2.expiry(), Some(e));
        assert_eq!(r2.payload(), Payload::Inline(b"hello"));
        r2.set_expiry_in_place(Expiry {
            at_ms: 5,
            volatile_idx: 1,
        });
        assert_eq!(r2.expire_at(), Some(5));
        assert_eq!(r2.with_expiry(None), r);
    }

    #[test]
    fn int_and_slab_payloads() {
        let mut r = Record::new(b"n", NewPayload::Int(-42), None, 0);
        assert_eq!(r.payload(), Payload::Int(-42));
        assert!(r.set_int_in_place(i64::MAX));
        assert_eq!(r.payload(), Payload::Int(i64::MAX));
        let s = Record::new(b"big", NewPayload::Slab(Kind::Hash, 9), None, 0);
        assert_eq!(s.kind(), Kind::Hash);
        assert_eq!(s.payload(), Payload::Slab(9));
    }

    #[test]
    fn long_keys_use_multibyte_lengths() {
        let key = vec![b'k'; 300];
        let r = Record::new(&key, NewPayload::Inline(b""), None, 1);
        assert_eq!(r.key(), &key[..]);
        assert_eq!(r.payload(), Payload::Inline(b""));
    }
}
