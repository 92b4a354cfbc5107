//! How one key is stored: a single compact record holding key, metadata and small values.
//!
//! A record ([`Record`], laid out in `super::record`) is one heap allocation
//! addressed by one thin pointer: header, key, expiry metadata and payload.
//!
//! The payload is the string itself for short strings (Redis's `embstr`,
//! up to 44 bytes), 8 bytes for integers (`int`), or a 4-byte index into the
//! database's object slab for everything that is big or mutable in place:
//! `raw` strings (over 44 bytes, or after APPEND/SETRANGE, as in Redis) and
//! collections. So a typical small key/value pair costs one allocation
//! plus its table slot, where Redis spends four allocations.

/// Strings up to this length are stored inside the record (Redis's embstr limit).
pub const EMBSTR_MAX: usize = 44;

pub use super::record::Record;

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
}

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
