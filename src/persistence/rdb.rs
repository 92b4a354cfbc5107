//! Redis's RDB format, version 10 (Redis 7.0): the writer's building blocks and the loader.
//!
//! Writing is split so that shards can serialize their keys independently:
//! `save_key` produces one key's bytes (expiry, type, key, value); the
//! snapshot coordinator frames them with `save_header`, `save_db_header` and
//! the EOF/checksum trailer. Every value type has its encoder in
//! [`save_object`] and its decoder in [`load_value`]: a new type adds one arm
//! to each.

use super::lzf;
use crate::storage::value::Object;
use crate::util::num;

/// The RDB version Redis 7.0 writes.
pub const RDB_VERSION: u32 = 10;

/// Opcodes (rdb.h).
pub mod op {
    /// Function library (7.0).
    pub const FUNCTION2: u8 = 245;
    /// Function library (7.0 release candidates).
    pub const FUNCTION_PRE_GA: u8 = 246;
    /// Module auxiliary data.
    pub const MODULE_AUX: u8 = 247;
    /// LRU idle time of the next key.
    pub const IDLE: u8 = 248;
    /// LFU frequency of the next key.
    pub const FREQ: u8 = 249;
    /// Auxiliary field.
    pub const AUX: u8 = 250;
    /// Hash table size hints for the current db.
    pub const RESIZEDB: u8 = 251;
    /// Expiry of the next key in ms.
    pub const EXPIRETIME_MS: u8 = 252;
    /// Expiry of the next key in seconds (old files).
    pub const EXPIRETIME: u8 = 253;
    /// Database selector.
    pub const SELECTDB: u8 = 254;
    /// End of file.
    pub const EOF: u8 = 255;
}

/// Value types (rdb.h).
pub mod ty {
    /// String.
    pub const STRING: u8 = 0;
    /// List as a linked list of strings (old).
    pub const LIST: u8 = 1;
    /// Set as a list of members.
    pub const SET: u8 = 2;
    /// Sorted set with string scores (old).
    pub const ZSET: u8 = 3;
    /// Hash as field/value pairs.
    pub const HASH: u8 = 4;
    /// Sorted set with binary double scores.
    pub const ZSET_2: u8 = 5;
    /// Module value (pre GA).
    pub const MODULE_PRE_GA: u8 = 6;
    /// Module value.
    pub const MODULE_2: u8 = 7;
    /// Hash as a zipmap (very old).
    pub const HASH_ZIPMAP: u8 = 9;
    /// List as one ziplist.
    pub const LIST_ZIPLIST: u8 = 10;
    /// Set as an intset.
    pub const SET_INTSET: u8 = 11;
    /// Sorted set as a ziplist.
    pub const ZSET_ZIPLIST: u8 = 12;
    /// Hash as a ziplist.
    pub const HASH_ZIPLIST: u8 = 13;
    /// List as a quicklist of ziplists.
    pub const LIST_QUICKLIST: u8 = 14;
    /// Stream (listpacks).
    pub const STREAM_LISTPACKS: u8 = 15;
    /// Hash as a listpack.
    pub const HASH_LISTPACK: u8 = 16;
    /// Sorted set as a listpack.
    pub const ZSET_LISTPACK: u8 = 17;
    /// List as a quicklist of listpacks / plain nodes (7.0).
    pub const LIST_QUICKLIST_2: u8 = 18;
    /// Stream (7.0 listpacks).
    pub const STREAM_LISTPACKS_2: u8 = 19;
}

const ENC_INT8: u8 = 0;
const ENC_INT16: u8 = 1;
const ENC_INT32: u8 = 2;
const ENC_LZF: u8 = 3;

/// Options that shape the bytes written.
#[derive(Clone, Copy, Debug)]
pub struct SaveOpts {
    /// rdbcompression: LZF strings longer than 20 bytes when it pays.
    pub compression: bool,
}

/// Appends a length (rdbSaveLen): 6-bit, 14-bit, 32-bit or 64-bit big-endian.
pub fn save_len(out: &mut Vec<u8>, len: u64) {
    if len < 1 << 6 {
        out.push(len as u8);
    } else if len < 1 << 14 {
        out.push(0x40 | (len >> 8) as u8);
        out.push(len as u8);
    } else if len <= u32::MAX as u64 {
        out.push(0x80);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

/// Appends `v` in the 8/16/32-bit integer encodings when it fits (rdbEncodeInteger).
fn save_int_encoded(out: &mut Vec<u8>, v: i64) -> bool {
    if (i8::MIN as i64..=i8::MAX as i64).contains(&v) {
        out.push(0xC0 | ENC_INT8);
        out.push(v as i8 as u8);
    } else if (i16::MIN as i64..=i16::MAX as i64).contains(&v) {
        out.push(0xC0 | ENC_INT16);
        out.extend_from_slice(&(v as i16).to_le_bytes());
    } else if (i32::MIN as i64..=i32::MAX as i64).contains(&v) {
        out.push(0xC0 | ENC_INT32);
        out.extend_from_slice(&(v as i32).to_le_bytes());
    } else {
        return false;
    }
    true
}

/// Appends a string as rdbSaveRawString: integer encoding for short canonical
/// integers, LZF when enabled and worth it, else length + bytes.
pub fn save_string(out: &mut Vec<u8>, s: &[u8], opts: SaveOpts) {
    if s.len() <= 11 {
        if let Some(v) = num::parse_i64(s) {
            // Only a canonical form round-trips (rdbTryIntegerEncoding).
            let mut buf = [0u8; 24];
            if num::format_i64(v, &mut buf) == s && save_int_encoded(out, v) {
                return;
            }
        }
    }
    if opts.compression && s.len() > 20 && save_lzf(out, s) {
        return;
    }
    save_len(out, s.len() as u64);
    out.extend_from_slice(s);
}

thread_local! {
    /// Reused output buffer of LZF attempts: a snapshot tries every string
    /// longer than 20 bytes, and most small ones do not compress.
    static LZF_SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Appends `s` LZF-compressed (rdbSaveLzfStringObject); false, with `out`
/// untouched, when it does not shrink by more than 4 bytes.
fn save_lzf(out: &mut Vec<u8>, s: &[u8]) -> bool {
    let try_with = |z: &mut Vec<u8>, out: &mut Vec<u8>| {
        if !lzf::compress_into(s, s.len() - 4, z) {
            return false;
        }
        out.push(0xC0 | ENC_LZF);
        save_len(out, z.len() as u64);
        save_len(out, s.len() as u64);
        out.extend_from_slice(z);
        true
    };
    LZF_SCRATCH.with(|c| match c.try_borrow_mut() {
        Ok(mut z) => {
            let ok = try_with(&mut z, out);
            // A huge string's buffer is not kept for the small ones.
            if z.capacity() > 1 << 20 {
                *z = Vec::new();
            }
            ok
        }
        Err(_) => try_with(&mut Vec::new(), out),
    })
}

/// Appends an integer string (rdbSaveLongLongAsStringObject).
pub fn save_i64(out: &mut Vec<u8>, v: i64) {
    if !save_int_encoded(out, v) {
        let mut buf = [0u8; 24];
        let s = num::format_i64(v, &mut buf);
        save_len(out, s.len() as u64);
        out.extend_from_slice(s);
    }
}

fn save_aux(out: &mut Vec<u8>, key: &str, val: &[u8]) {
    out.push(op::AUX);
    save_string(out, key.as_bytes(), SaveOpts { compression: false });
    save_string(out, val, SaveOpts { compression: false });
}

/// The file header: magic, version and the aux fields Redis 7.0 writes.
pub fn save_header(out: &mut Vec<u8>, used_mem: u64, now_secs: u64) {
    save_header_with(out, used_mem, now_secs, false);
}

/// The header, with `aof-base` 1 for an AOF's RDB base file (as Redis's rewrite).
pub fn save_header_with(out: &mut Vec<u8>, used_mem: u64, now_secs: u64, aof_base: bool) {
    out.extend_from_slice(format!("REDIS{RDB_VERSION:04}").as_bytes());
    save_aux(out, "redis-ver", crate::REDIS_VERSION.as_bytes());
    save_aux(out, "redis-bits", b"64");
    save_aux(out, "ctime", now_secs.to_string().as_bytes());
    save_aux(out, "used-mem", used_mem.to_string().as_bytes());
    save_aux(out, "aof-base", if aof_base { b"1" } else { b"0" });
}

/// SELECTDB and RESIZEDB for one database's section.
pub fn save_db_header(out: &mut Vec<u8>, db: usize, keys: u64, expires: u64) {
    out.push(op::SELECTDB);
    save_len(out, db as u64);
    out.push(op::RESIZEDB);
    save_len(out, keys);
    save_len(out, expires);
}

/// A value as a shard stores it, borrowed for serialization.
#[derive(Clone, Copy, Debug)]
pub enum ValueRef<'a> {
    /// An int-encoded string.
    Int(i64),
    /// A string's bytes.
    Bytes(&'a [u8]),
    /// An out-of-line object.
    Object(&'a Object),
}

/// Appends one key: EXPIRETIME_MS when it has a TTL, type, key, value (rdbSaveKeyValuePair).
pub fn save_key(
    out: &mut Vec<u8>,
    key: &[u8],
    value: ValueRef<'_>,
    expire_ms: Option<u64>,
    opts: SaveOpts,
) {
    if let Some(at) = expire_ms {
        out.push(op::EXPIRETIME_MS);
        out.extend_from_slice(&at.to_le_bytes());
    }
    match value {
        ValueRef::Int(v) => {
            out.push(ty::STRING);
            save_string(out, key, opts);
            save_i64(out, v);
        }
        ValueRef::Bytes(b) => {
            out.push(ty::STRING);
            save_string(out, key, opts);
            save_string(out, b, opts);
        }
        ValueRef::Object(o) => {
            // The type byte depends on the object's encoding, which
            // save_object finds out: reserve it and fill it in after (no
            // second buffer and copy per key).
            let at = out.len();
            out.push(0);
            save_string(out, key, opts);
            out[at] = save_object(out, o, opts);
        }
    }
}

/// Appends an object's value and returns its RDB type: the one place each value type's encoder lives.
fn save_object(out: &mut Vec<u8>, obj: &Object, opts: SaveOpts) -> u8 {
    match obj {
        Object::RawStr(v) => {
            save_string(out, v, opts);
            ty::STRING
        }
        Object::Hash(h) => save_hash(
            out,
            h.pairs().into_iter(),
            h.encoding_name() == "listpack",
            opts,
        ),
        // The list's nodes are listpacks in Redis's format: written as they are, as Redis does.
        Object::List(l) => {
            let nodes: Vec<&[u8]> = l.listpacks().collect();
            save_len(out, nodes.len() as u64);
            for lp in nodes {
                save_len(out, 2); // QUICKLIST_NODE_CONTAINER_PACKED
                save_string(out, lp, opts);
            }
            ty::LIST_QUICKLIST_2
        }
        Object::Set(set) => {
            let members = set.members();
            save_set(out, members.iter().map(|m| &m[..]), set.is_intset(), opts)
        }
        Object::ZSet(z) => {
            let members = if z.is_empty() {
                Vec::new()
            } else {
                z.range(0, z.len() - 1, false)
            };
            save_zset(
                out,
                members.iter().map(|(m, s)| (&m[..], *s)),
                z.is_listpack(),
                opts,
            )
        }
    }
}

// ---------------------------------------------------------------------------
// Collection encoders. Each family's arm in `save_object` calls one of these
// with its elements; they produce what Redis 7.0 writes for the same encoding.
// ---------------------------------------------------------------------------

/// Bytes of a listpack entry's back-length field for an entry of `l` bytes (lpEncodeBacklen).
fn backlen_size(l: usize) -> usize {
    if l <= 127 {
        1
    } else if l < 16383 {
        2
    } else if l < 2097151 {
        3
    } else if l < 268435455 {
        4
    } else {
        5
    }
}

/// A canonical decimal integer, as listpacks and intsets store them (string2ll + round trip).
fn canonical_int(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let v = num::parse_i64(s)?;
    let mut buf = [0u8; 24];
    (num::format_i64(v, &mut buf) == s).then_some(v)
}

/// Builds listpacks entry by entry.
#[derive(Debug)]
pub struct ListpackWriter {
    buf: Vec<u8>,
    count: usize,
}

impl Default for ListpackWriter {
    fn default() -> Self {
        ListpackWriter::new()
    }
}

impl ListpackWriter {
    /// An empty listpack.
    pub fn new() -> Self {
        ListpackWriter {
            buf: vec![0; 6],
            count: 0,
        }
    }

    /// Bytes so far (header included, end marker not).
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when no entry was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Appends an entry: integer encodings for canonical integers, as lpAppend.
    pub fn push(&mut self, e: &[u8]) {
        let start = self.buf.len();
        let b = &mut self.buf;
        if let Some(v) = canonical_int(e) {
            if (0..=127).contains(&v) {
                b.push(v as u8);
            } else if (-4096..=4095).contains(&v) {
                let u = if v < 0 { (1 << 13) + v } else { v } as u16;
                b.push(0xC0 | (u >> 8) as u8);
                b.push(u as u8);
            } else if (i16::MIN as i64..=i16::MAX as i64).contains(&v) {
                b.push(0xF1);
                b.extend_from_slice(&(v as i16).to_le_bytes());
            } else if (-(1 << 23)..(1 << 23)).contains(&v) {
                b.push(0xF2);
                b.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
            } else if (i32::MIN as i64..=i32::MAX as i64).contains(&v) {
                b.push(0xF3);
                b.extend_from_slice(&(v as i32).to_le_bytes());
            } else {
                b.push(0xF4);
                b.extend_from_slice(&v.to_le_bytes());
            }
        } else if e.len() < 64 {
            b.push(0x80 | e.len() as u8);
            b.extend_from_slice(e);
        } else if e.len() < 4096 {
            b.push(0xE0 | (e.len() >> 8) as u8);
            b.push(e.len() as u8);
            b.extend_from_slice(e);
        } else {
            b.push(0xF0);
            b.extend_from_slice(&(e.len() as u32).to_le_bytes());
            b.extend_from_slice(e);
        }
        let l = b.len() - start;
        match backlen_size(l) {
            1 => b.push(l as u8),
            n => {
                // Most significant group first; every byte but the first has bit 7 set.
                for k in (0..n).rev() {
                    let g = ((l >> (7 * k)) & 127) as u8;
                    b.push(if k == n - 1 { g } else { g | 128 });
                }
            }
        }
        self.count += 1;
    }

    /// The finished listpack blob.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(0xFF);
        let total = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&total.to_le_bytes());
        let n = self.count.min(0xFFFF) as u16;
        self.buf[4..6].copy_from_slice(&n.to_le_bytes());
        self.buf
    }
}

/// Bytes per quicklist node before a new one starts (list-max-listpack-size -2).
const QUICKLIST_NODE_BYTES: usize = 8 * 1024;

/// A list as Redis 7.0 writes it (RDB_TYPE_LIST_QUICKLIST_2, packed listpack
/// nodes; an element larger than a node gets a plain node of its own).
pub fn save_list<'a>(
    out: &mut Vec<u8>,
    items: impl Iterator<Item = &'a [u8]>,
    opts: SaveOpts,
) -> u8 {
    let mut nodes: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut lp = ListpackWriter::new();
    for it in items {
        if it.len() >= QUICKLIST_NODE_BYTES {
            if !lp.is_empty() {
                nodes.push((2, std::mem::take(&mut lp).finish()));
            }
            nodes.push((1, it.to_vec()));
            continue;
        }
        if !lp.is_empty() && lp.len() + it.len() + 11 > QUICKLIST_NODE_BYTES {
            nodes.push((2, std::mem::take(&mut lp).finish()));
        }
        lp.push(it);
    }
    if !lp.is_empty() {
        nodes.push((2, lp.finish()));
    }
    save_len(out, nodes.len() as u64);
    for (container, blob) in nodes {
        save_len(out, container);
        save_string(out, &blob, opts);
    }
    ty::LIST_QUICKLIST_2
}

/// A set: an intset when `intset` (every member a canonical integer), else a plain member list.
pub fn save_set<'a>(
    out: &mut Vec<u8>,
    members: impl Iterator<Item = &'a [u8]>,
    intset: bool,
    opts: SaveOpts,
) -> u8 {
    let members: Vec<&[u8]> = members.collect();
    let ints: Option<Vec<i64>> = if intset {
        members.iter().map(|m| canonical_int(m)).collect()
    } else {
        None
    };
    if let Some(mut v) = ints {
        v.sort_unstable();
        let fits = |lo: i64, hi: i64| v.iter().all(|&x| (lo..=hi).contains(&x));
        let width: usize = if fits(i16::MIN as i64, i16::MAX as i64) {
            2
        } else if fits(i32::MIN as i64, i32::MAX as i64) {
            4
        } else {
            8
        };
        let mut blob = Vec::with_capacity(8 + v.len() * width);
        blob.extend_from_slice(&(width as u32).to_le_bytes());
        blob.extend_from_slice(&(v.len() as u32).to_le_bytes());
        for x in v {
            blob.extend_from_slice(&x.to_le_bytes()[..width]);
        }
        save_string(out, &blob, opts);
        return ty::SET_INTSET;
    }
    save_len(out, members.len() as u64);
    for m in members {
        save_string(out, m, opts);
    }
    ty::SET
}

/// A hash: one listpack of field, value, ... when `compact`, else field/value pairs.
pub fn save_hash<'a>(
    out: &mut Vec<u8>,
    pairs: impl Iterator<Item = (&'a [u8], &'a [u8])>,
    compact: bool,
    opts: SaveOpts,
) -> u8 {
    if compact {
        let mut lp = ListpackWriter::new();
        for (f, v) in pairs {
            lp.push(f);
            lp.push(v);
        }
        save_string(out, &lp.finish(), opts);
        return ty::HASH_LISTPACK;
    }
    let pairs: Vec<(&[u8], &[u8])> = pairs.collect();
    save_len(out, pairs.len() as u64);
    for (f, v) in pairs {
        save_string(out, f, opts);
        save_string(out, v, opts);
    }
    ty::HASH
}

/// A sorted set in score order: one listpack of member, score, ... when
/// `compact`, else RDB_TYPE_ZSET_2 with binary scores, written from the
/// highest score down as Redis does (so its loader appends cheaply).
pub fn save_zset<'a>(
    out: &mut Vec<u8>,
    members: impl DoubleEndedIterator<Item = (&'a [u8], f64)>,
    compact: bool,
    opts: SaveOpts,
) -> u8 {
    if compact {
        let mut lp = ListpackWriter::new();
        let mut buf = [0u8; 64];
        for (m, s) in members {
            lp.push(m);
            lp.push(num::d2string(s, &mut buf));
        }
        save_string(out, &lp.finish(), opts);
        return ty::ZSET_LISTPACK;
    }
    let members: Vec<(&[u8], f64)> = members.rev().collect();
    save_len(out, members.len() as u64);
    for (m, s) in members {
        save_string(out, m, opts);
        out.extend_from_slice(&s.to_le_bytes());
    }
    ty::ZSET_2
}

/// `rdbcompression` as DUMP reads it (set by the config; snapshots get it in [`SaveOpts`]).
pub static DUMP_COMPRESSION: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(true);

/// DUMP's serialized value (createDumpPayload): RDB type, value, RDB version
/// (2 bytes LE), CRC-64 of everything before it (8 bytes LE).
pub fn dump_payload(value: ValueRef<'_>) -> Vec<u8> {
    let opts = SaveOpts {
        compression: DUMP_COMPRESSION.load(std::sync::atomic::Ordering::Relaxed),
    };
    let mut out = Vec::new();
    match value {
        ValueRef::Int(v) => {
            out.push(ty::STRING);
            save_i64(&mut out, v);
        }
        ValueRef::Bytes(b) => {
            out.push(ty::STRING);
            save_string(&mut out, b, opts);
        }
        ValueRef::Object(o) => {
            let mut body = Vec::new();
            let t = save_object(&mut body, o, opts);
            out.push(t);
            out.extend_from_slice(&body);
        }
    }
    out.extend_from_slice(&(RDB_VERSION as u16).to_le_bytes());
    let crc = super::crc64::crc64(0, &out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Why RESTORE refuses a payload: its two errors in Redis.
#[derive(Debug, PartialEq, Eq)]
pub enum PayloadError {
    /// Too short, a newer RDB version, or a checksum mismatch (verifyDumpPayload).
    Footer,
    /// The value does not decode (or decodes to an empty or invalid collection).
    Format,
}

/// Decodes a DUMP payload after checking its footer as Redis's verifyDumpPayload does.
pub fn parse_payload(p: &[u8]) -> Result<LoadedValue, PayloadError> {
    if p.len() < 10 {
        return Err(PayloadError::Footer);
    }
    let body = p.len() - 10;
    let ver = u16::from_le_bytes([p[body], p[body + 1]]);
    if u32::from(ver) > RDB_VERSION {
        return Err(PayloadError::Footer);
    }
    let crc = super::crc64::crc64(0, &p[..p.len() - 8]);
    if crc.to_le_bytes() != p[body + 2..] {
        return Err(PayloadError::Footer);
    }
    // The value is read from the whole payload, footer included, as Redis's
    // rio does: a value that runs into the footer is what Redis would load.
    let mut rd = Rd { b: p, pos: 0 };
    let t = rd.take(1).map_err(|_| PayloadError::Format)?[0];
    let v = load_value(&mut rd, t, 0).map_err(|_| PayloadError::Format)?;
    let empty = match &v {
        LoadedValue::Str(_) => false,
        LoadedValue::List(x) | LoadedValue::Set(x) => x.is_empty(),
        LoadedValue::Hash(x) => x.is_empty(),
        LoadedValue::ZSet(x) => x.is_empty(),
    };
    if empty {
        return Err(PayloadError::Format);
    }
    Ok(v)
}

// ---------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------

/// A value read from an RDB file, independent of how percore will encode it.
#[derive(Clone, Debug, PartialEq)]
pub enum LoadedValue {
    /// A string.
    Str(Vec<u8>),
    /// A list, head first.
    List(Vec<Vec<u8>>),
    /// A set's members.
    Set(Vec<Vec<u8>>),
    /// A hash's field/value pairs.
    Hash(Vec<(Vec<u8>, Vec<u8>)>),
    /// A sorted set's member/score pairs.
    ZSet(Vec<(Vec<u8>, f64)>),
}

/// One key read from an RDB file.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadedKey {
    /// Its database.
    pub db: usize,
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: LoadedValue,
    /// Absolute expiry in ms, if any.
    pub expire_ms: Option<u64>,
    /// Offset of the key's record in the file (for error messages).
    pub offset: usize,
}

/// What a load found besides the keys.
#[derive(Clone, Debug, Default)]
pub struct LoadInfo {
    /// Keys read (expired ones included).
    pub keys: u64,
    /// The redis-ver aux field, if present.
    pub redis_ver: Option<String>,
    /// The ctime aux field, if present.
    pub ctime: Option<i64>,
    /// True when the file carried a checksum and it was verified.
    pub checksum_verified: bool,
    /// Function libraries (RDB_OPCODE_FUNCTION2 payloads), in file order.
    pub functions: Vec<Vec<u8>>,
}

/// Reads one RDB string at `pos` of `data`: the string and the offset after it.
pub fn load_string_at(data: &[u8], pos: usize) -> Result<(Vec<u8>, usize), LoadError> {
    let mut rd = Rd { b: data, pos };
    let s = rd.string()?;
    Ok((s, rd.pos))
}

/// A load error: where and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    /// Byte offset in the file where the problem was found.
    pub offset: usize,
    /// What is wrong.
    pub msg: String,
}

type R<T> = Result<T, LoadError>;

/// A bounds-checked cursor over the file's bytes.
struct Rd<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Rd<'a> {
    fn err<T>(&self, at: usize, msg: impl Into<String>) -> R<T> {
        Err(LoadError {
            offset: at,
            msg: msg.into(),
        })
    }

    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        if self.b.len() - self.pos < n {
            return self.err(
                self.b.len(),
                format!(
                    "unexpected end of file (needed {n} bytes at offset {})",
                    self.pos
                ),
            );
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }

    /// A length, or an encoding marker (value, is_encoded).
    fn len_enc(&mut self) -> R<(u64, bool)> {
        let at = self.pos;
        let b = self.u8()?;
        match b >> 6 {
            0 => Ok(((b & 0x3f) as u64, false)),
            1 => Ok(((((b & 0x3f) as u64) << 8) | self.u8()? as u64, false)),
            2 => match b {
                0x80 => Ok((
                    u32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")) as u64,
                    false,
                )),
                0x81 => Ok((
                    u64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes")),
                    false,
                )),
                _ => self.err(at, format!("unknown length encoding 0x{b:02x}")),
            },
            _ => Ok(((b & 0x3f) as u64, true)),
        }
    }

    fn len(&mut self) -> R<u64> {
        let at = self.pos;
        match self.len_enc()? {
            (v, false) => Ok(v),
            (_, true) => self.err(at, "an encoded string where a length was expected"),
        }
    }

    /// A count of items that must be plausible for the bytes left (each item takes at least a byte).
    fn count(&mut self, per_item: u64) -> R<usize> {
        let at = self.pos;
        let n = self.len()?;
        let left = (self.b.len() - self.pos) as u64;
        if n.saturating_mul(per_item) > left {
            return self.err(
                at,
                format!("length {n} larger than the rest of the file ({left} bytes)"),
            );
        }
        Ok(n as usize)
    }

    fn string(&mut self) -> R<Vec<u8>> {
        let at = self.pos;
        let (v, enc) = self.len_enc()?;
        if !enc {
            return Ok(self.take_len(v, at)?.to_vec());
        }
        let int = match v as u8 {
            ENC_INT8 => self.u8()? as i8 as i64,
            ENC_INT16 => i16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")) as i64,
            ENC_INT32 => i32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")) as i64,
            ENC_LZF => {
                let clen = self.len()?;
                let len = self.len()?;
                let z = self.take_len(clen, at)?;
                // A back reference (at most 3 bytes) expands to at most 264
                // bytes: a larger claim is corrupt, and must not be allocated.
                if len > clen.saturating_mul(90).saturating_add(64) {
                    return self.err(
                        at,
                        format!("LZF string claims {len} bytes from {clen} compressed bytes"),
                    );
                }
                return match lzf::decompress(z, len as usize) {
                    Ok(s) => Ok(s),
                    Err(e) => self.err(at, format!("invalid LZF-compressed string: {e}")),
                };
            }
            other => return self.err(at, format!("unknown string encoding {other}")),
        };
        let mut buf = [0u8; 24];
        Ok(num::format_i64(int, &mut buf).to_vec())
    }

    fn take_len(&mut self, len: u64, at: usize) -> R<&'a [u8]> {
        if len > (self.b.len() - self.pos) as u64 {
            return self.err(
                at,
                format!(
                    "string of {len} bytes runs past the end of the file ({} bytes left)",
                    self.b.len() - self.pos
                ),
            );
        }
        self.take(len as usize)
    }

    /// A score written as text with a one-byte length (rdbLoadDoubleValue).
    fn double_text(&mut self) -> R<f64> {
        let at = self.pos;
        match self.u8()? {
            253 => Ok(f64::NAN),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            n => {
                let s = self.take(n as usize)?;
                match std::str::from_utf8(s)
                    .ok()
                    .and_then(|t| t.parse::<f64>().ok())
                {
                    Some(d) => Ok(d),
                    None => self.err(at, "invalid score"),
                }
            }
        }
    }

    fn double_bin(&mut self) -> R<f64> {
        Ok(f64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
}

/// Formats a compact-encoding integer entry as its string.
fn int_bytes(v: i64) -> Vec<u8> {
    let mut buf = [0u8; 24];
    num::format_i64(v, &mut buf).to_vec()
}

/// Entries of a listpack blob (7.0's compact encoding); errors carry `at` (the blob's offset).
fn listpack_entries(lp: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    if lp.len() < 7 {
        return Err("listpack shorter than its header".into());
    }
    let total = u32::from_le_bytes(lp[..4].try_into().expect("4 bytes")) as usize;
    if total != lp.len() {
        return Err(format!(
            "listpack header says {total} bytes, blob has {}",
            lp.len()
        ));
    }
    let count = u16::from_le_bytes(lp[4..6].try_into().expect("2 bytes")) as usize;
    let mut out = Vec::new();
    let mut i = 6usize;
    let need = |i: usize, n: usize| -> Result<(), String> {
        if i + n > lp.len() {
            Err("listpack entry runs past the end".into())
        } else {
            Ok(())
        }
    };
    loop {
        need(i, 1)?;
        let b = lp[i];
        if b == 0xFF {
            i += 1;
            break;
        }
        let (entry, enc_len): (Vec<u8>, usize) = if b & 0x80 == 0 {
            (int_bytes((b & 0x7f) as i64), 1)
        } else if b & 0xC0 == 0x80 {
            let n = (b & 0x3f) as usize;
            need(i, 1 + n)?;
            (lp[i + 1..i + 1 + n].to_vec(), 1 + n)
        } else if b & 0xE0 == 0xC0 {
            need(i, 2)?;
            let raw = (((b & 0x1f) as u16) << 8 | lp[i + 1] as u16) as i64;
            // 13-bit two's complement.
            let v = if raw >= 1 << 12 { raw - (1 << 13) } else { raw };
            (int_bytes(v), 2)
        } else if b & 0xF0 == 0xE0 {
            need(i, 2)?;
            let n = (((b & 0x0f) as usize) << 8) | lp[i + 1] as usize;
            need(i, 2 + n)?;
            (lp[i + 2..i + 2 + n].to_vec(), 2 + n)
        } else {
            match b {
                0xF0 => {
                    need(i, 5)?;
                    let n = u32::from_le_bytes(lp[i + 1..i + 5].try_into().expect("4")) as usize;
                    need(i, 5 + n)?;
                    (lp[i + 5..i + 5 + n].to_vec(), 5 + n)
                }
                0xF1 => {
                    need(i, 3)?;
                    let v = i16::from_le_bytes(lp[i + 1..i + 3].try_into().expect("2"));
                    (int_bytes(v as i64), 3)
                }
                0xF2 => {
                    need(i, 4)?;
                    let v = i32::from_le_bytes([0, lp[i + 1], lp[i + 2], lp[i + 3]]) >> 8;
                    (int_bytes(v as i64), 4)
                }
                0xF3 => {
                    need(i, 5)?;
                    let v = i32::from_le_bytes(lp[i + 1..i + 5].try_into().expect("4"));
                    (int_bytes(v as i64), 5)
                }
                0xF4 => {
                    need(i, 9)?;
                    let v = i64::from_le_bytes(lp[i + 1..i + 9].try_into().expect("8"));
                    (int_bytes(v), 9)
                }
                _ => return Err(format!("invalid listpack entry encoding 0x{b:02x}")),
            }
        };
        let back = backlen_size(enc_len);
        need(i, enc_len + back)?;
        i += enc_len + back;
        out.push(entry);
    }
    if i != lp.len() {
        return Err("bytes after the listpack end marker".into());
    }
    if count != 0xFFFF && count != out.len() {
        return Err(format!(
            "listpack header says {count} entries, found {}",
            out.len()
        ));
    }
    Ok(out)
}

/// Entries of a ziplist blob (pre-7.0 compact encoding).
fn ziplist_entries(zl: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    if zl.len() < 11 {
        return Err("ziplist shorter than its header".into());
    }
    let total = u32::from_le_bytes(zl[..4].try_into().expect("4")) as usize;
    if total != zl.len() {
        return Err(format!(
            "ziplist header says {total} bytes, blob has {}",
            zl.len()
        ));
    }
    let count = u16::from_le_bytes(zl[8..10].try_into().expect("2")) as usize;
    let mut out = Vec::new();
    let mut i = 10usize;
    let need = |i: usize, n: usize| -> Result<(), String> {
        if i + n > zl.len() {
            Err("ziplist entry runs past the end".into())
        } else {
            Ok(())
        }
    };
    loop {
        need(i, 1)?;
        if zl[i] == 0xFF {
            i += 1;
            break;
        }
        // prevlen
        i += if zl[i] < 254 { 1 } else { 5 };
        need(i, 1)?;
        let b = zl[i];
        let entry = match b >> 6 {
            0 => {
                let n = (b & 0x3f) as usize;
                need(i, 1 + n)?;
                let e = zl[i + 1..i + 1 + n].to_vec();
                i += 1 + n;
                e
            }
            1 => {
                need(i, 2)?;
                let n = (((b & 0x3f) as usize) << 8) | zl[i + 1] as usize;
                need(i, 2 + n)?;
                let e = zl[i + 2..i + 2 + n].to_vec();
                i += 2 + n;
                e
            }
            2 => {
                need(i, 5)?;
                let n = u32::from_be_bytes(zl[i + 1..i + 5].try_into().expect("4")) as usize;
                need(i, 5 + n)?;
                let e = zl[i + 5..i + 5 + n].to_vec();
                i += 5 + n;
                e
            }
            _ => {
                let (v, n) = match b {
                    0xC0 => {
                        need(i, 3)?;
                        (
                            i16::from_le_bytes(zl[i + 1..i + 3].try_into().expect("2")) as i64,
                            3,
                        )
                    }
                    0xD0 => {
                        need(i, 5)?;
                        (
                            i32::from_le_bytes(zl[i + 1..i + 5].try_into().expect("4")) as i64,
                            5,
                        )
                    }
                    0xE0 => {
                        need(i, 9)?;
                        (
                            i64::from_le_bytes(zl[i + 1..i + 9].try_into().expect("8")),
                            9,
                        )
                    }
                    0xF0 => {
                        need(i, 4)?;
                        (
                            (i32::from_le_bytes([0, zl[i + 1], zl[i + 2], zl[i + 3]]) >> 8) as i64,
                            4,
                        )
                    }
                    0xFE => {
                        need(i, 2)?;
                        (zl[i + 1] as i8 as i64, 2)
                    }
                    0xF1..=0xFD => (((b & 0x0f) as i64) - 1, 1),
                    _ => return Err(format!("invalid ziplist entry encoding 0x{b:02x}")),
                };
                i += n;
                int_bytes(v)
            }
        };
        out.push(entry);
    }
    if i != zl.len() {
        return Err("bytes after the ziplist end marker".into());
    }
    if count != 0xFFFF && count != out.len() {
        return Err(format!(
            "ziplist header says {count} entries, found {}",
            out.len()
        ));
    }
    Ok(out)
}

/// Members of an intset blob.
fn intset_members(is: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    if is.len() < 8 {
        return Err("intset shorter than its header".into());
    }
    let width = u32::from_le_bytes(is[..4].try_into().expect("4")) as usize;
    let n = u32::from_le_bytes(is[4..8].try_into().expect("4")) as usize;
    if ![2, 4, 8].contains(&width) {
        return Err(format!("invalid intset encoding {width}"));
    }
    if is.len() != 8 + n.saturating_mul(width) {
        return Err("intset length does not match its header".into());
    }
    Ok(is[8..]
        .chunks(width)
        .map(|c| {
            let v = match width {
                2 => i16::from_le_bytes(c.try_into().expect("2")) as i64,
                4 => i32::from_le_bytes(c.try_into().expect("4")) as i64,
                _ => i64::from_le_bytes(c.try_into().expect("8")),
            };
            int_bytes(v)
        })
        .collect())
}

/// Field/value pairs.
type Pairs = Vec<(Vec<u8>, Vec<u8>)>;
/// A decoder of a compact-encoding blob into its entries.
type BlobDecoder = fn(&[u8]) -> Result<Vec<Vec<u8>>, String>;

fn pairs(v: Vec<Vec<u8>>) -> Result<Pairs, String> {
    if !v.len().is_multiple_of(2) {
        return Err("odd number of entries in a pair encoding".into());
    }
    let mut out = Vec::with_capacity(v.len() / 2);
    let mut it = v.into_iter();
    while let (Some(a), Some(b)) = (it.next(), it.next()) {
        out.push((a, b));
    }
    Ok(out)
}

fn scored(v: Pairs) -> Result<Vec<(Vec<u8>, f64)>, String> {
    v.into_iter()
        .map(|(m, s)| match num::parse_f64(&s) {
            Some(d) => Ok((m, d)),
            None => Err("invalid score in a compact sorted set".into()),
        })
        .collect()
}

/// Reads a value of type `t`: the one place each value type's decoder lives.
fn load_value(rd: &mut Rd<'_>, t: u8, at: usize) -> R<LoadedValue> {
    let blob = |rd: &mut Rd<'_>, f: BlobDecoder| -> R<Vec<Vec<u8>>> {
        let bat = rd.pos;
        let b = rd.string()?;
        f(&b).map_err(|msg| LoadError { offset: bat, msg })
    };
    let at_err = |msg: String| LoadError { offset: at, msg };
    Ok(match t {
        ty::STRING => LoadedValue::Str(rd.string()?),
        ty::LIST => {
            let n = rd.count(1)?;
            LoadedValue::List((0..n).map(|_| rd.string()).collect::<R<_>>()?)
        }
        ty::SET => {
            let n = rd.count(1)?;
            LoadedValue::Set((0..n).map(|_| rd.string()).collect::<R<_>>()?)
        }
        ty::ZSET | ty::ZSET_2 => {
            let n = rd.count(2)?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                let m = rd.string()?;
                let s = if t == ty::ZSET {
                    rd.double_text()?
                } else {
                    rd.double_bin()?
                };
                v.push((m, s));
            }
            LoadedValue::ZSet(v)
        }
        ty::HASH => {
            let n = rd.count(2)?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push((rd.string()?, rd.string()?));
            }
            LoadedValue::Hash(v)
        }
        ty::LIST_ZIPLIST => LoadedValue::List(blob(rd, ziplist_entries)?),
        ty::SET_INTSET => LoadedValue::Set(blob(rd, intset_members)?),
        ty::ZSET_ZIPLIST => LoadedValue::ZSet(
            scored(pairs(blob(rd, ziplist_entries)?).map_err(at_err)?).map_err(at_err)?,
        ),
        ty::ZSET_LISTPACK => LoadedValue::ZSet(
            scored(pairs(blob(rd, listpack_entries)?).map_err(at_err)?).map_err(at_err)?,
        ),
        ty::HASH_ZIPLIST => LoadedValue::Hash(pairs(blob(rd, ziplist_entries)?).map_err(at_err)?),
        ty::HASH_LISTPACK => LoadedValue::Hash(pairs(blob(rd, listpack_entries)?).map_err(at_err)?),
        ty::LIST_QUICKLIST => {
            let n = rd.count(1)?;
            let mut v = Vec::new();
            for _ in 0..n {
                v.extend(blob(rd, ziplist_entries)?);
            }
            LoadedValue::List(v)
        }
        ty::LIST_QUICKLIST_2 => {
            let n = rd.count(2)?;
            let mut v = Vec::new();
            for _ in 0..n {
                let cat = rd.pos;
                match rd.len()? {
                    1 => v.push(rd.string()?),
                    2 => v.extend(blob(rd, listpack_entries)?),
                    c => return rd.err(cat, format!("unknown quicklist node container {c}")),
                }
            }
            LoadedValue::List(v)
        }
        ty::STREAM_LISTPACKS | ty::STREAM_LISTPACKS_2 => {
            return rd.err(at, "streams are not supported by percore yet")
        }
        ty::MODULE_PRE_GA | ty::MODULE_2 => {
            return rd.err(at, "module values are not supported by percore")
        }
        ty::HASH_ZIPMAP => {
            return rd.err(at, "zipmap-encoded hashes (Redis < 2.6) are not supported")
        }
        other => return rd.err(at, format!("unknown value type {other}")),
    })
}

/// Parses a whole RDB file. `f` receives every key (expired ones included:
/// the caller decides). The checksum is verified at the end when the file
/// carries one and `check_crc` is set; callers must not apply keys before
/// this returns Ok (no partial loads).
pub fn load(
    data: &[u8],
    check_crc: bool,
    mut f: impl FnMut(LoadedKey) -> Result<(), LoadError>,
) -> Result<LoadInfo, LoadError> {
    let mut rd = Rd { b: data, pos: 0 };
    let magic = rd.take(9).map_err(|_| LoadError {
        offset: 0,
        msg: "file too short for an RDB header".into(),
    })?;
    if &magic[..5] != b"REDIS" {
        return rd.err(0, "wrong signature (not an RDB file)");
    }
    let ver = std::str::from_utf8(&magic[5..])
        .ok()
        .and_then(|s| s.parse::<u32>().ok());
    match ver {
        Some(v) if (1..=RDB_VERSION).contains(&v) => {}
        _ => {
            return rd.err(
                5,
                format!(
                    "can't handle RDB format version {}",
                    String::from_utf8_lossy(&magic[5..])
                ),
            )
        }
    }
    let mut info = LoadInfo::default();
    let mut db = 0usize;
    let mut expire: Option<u64> = None;
    loop {
        let at = rd.pos;
        let t = rd.u8()?;
        match t {
            op::EXPIRETIME_MS => {
                expire = Some(u64::from_le_bytes(rd.take(8)?.try_into().expect("8")));
                continue;
            }
            op::EXPIRETIME => {
                let s = u32::from_le_bytes(rd.take(4)?.try_into().expect("4")) as u64;
                expire = Some(s * 1000);
                continue;
            }
            op::FREQ => {
                rd.u8()?;
                continue;
            }
            op::IDLE => {
                rd.len()?;
                continue;
            }
            op::EOF => break,
            op::SELECTDB => {
                let n = rd.len()?;
                db = usize::try_from(n).unwrap_or(usize::MAX);
                continue;
            }
            op::RESIZEDB => {
                rd.len()?;
                rd.len()?;
                continue;
            }
            op::AUX => {
                let k = rd.string()?;
                let v = rd.string()?;
                match &k[..] {
                    b"redis-ver" => info.redis_ver = Some(String::from_utf8_lossy(&v).into()),
                    b"ctime" => info.ctime = num::parse_i64(&v),
                    _ => {}
                }
                continue;
            }
            op::MODULE_AUX => return rd.err(at, "module auxiliary data is not supported"),
            op::FUNCTION2 => {
                let code = rd.string()?;
                info.functions.push(code);
                continue;
            }
            op::FUNCTION_PRE_GA => return rd.err(at, "Pre-release function format not supported"),
            _ => {}
        }
        let key = rd.string()?;
        let value = load_value(&mut rd, t, at)?;
        info.keys += 1;
        f(LoadedKey {
            db,
            key,
            value,
            expire_ms: expire.take(),
            offset: at,
        })?;
    }
    if ver.unwrap_or(0) >= 5 {
        let end = rd.pos;
        let stored = u64::from_le_bytes(rd.take(8)?.try_into().expect("8"));
        if check_crc && stored != 0 {
            let got = super::crc64::crc64(0, &data[..end]);
            if got != stored {
                return rd.err(
                    end,
                    format!("wrong RDB checksum: expected {stored:016x}, got {got:016x}"),
                );
            }
            info.checksum_verified = true;
        }
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(s: &[u8], compression: bool) -> Vec<u8> {
        let mut v = Vec::new();
        save_string(&mut v, s, SaveOpts { compression });
        v
    }

    #[test]
    fn string_encodings() {
        assert_eq!(enc(b"12", false), vec![0xC0, 12]);
        assert_eq!(enc(b"-300", false), vec![0xC1, 0xd4, 0xfe]);
        assert_eq!(
            enc(b"100000", false),
            [vec![0xC2], 100000i32.to_le_bytes().to_vec()].concat()
        );
        assert_eq!(enc(b"012", false), vec![3, b'0', b'1', b'2']);
        assert_eq!(enc(b"12345678901", false)[0], 11);
        let long = vec![b'x'; 100];
        assert_eq!(enc(&long, true)[0], 0xC3);
        assert_eq!(enc(&long, false)[0], 0x40);
        for s in [&b"12"[..], b"-300", b"100000", b"012", &long] {
            for c in [false, true] {
                let b = enc(s, c);
                let mut rd = Rd { b: &b, pos: 0 };
                assert_eq!(rd.string().unwrap(), s);
            }
        }
    }

    #[test]
    fn lengths() {
        for n in [
            0u64,
            63,
            64,
            16383,
            16384,
            u32::MAX as u64,
            u32::MAX as u64 + 1,
        ] {
            let mut v = Vec::new();
            save_len(&mut v, n);
            let mut rd = Rd { b: &v, pos: 0 };
            assert_eq!(rd.len().unwrap(), n);
            assert_eq!(rd.pos, v.len());
        }
    }

    #[test]
    fn file_round_trip_and_corruption() {
        let opts = SaveOpts { compression: true };
        let mut f = Vec::new();
        save_header(&mut f, 1000, 1_700_000_000);
        save_db_header(&mut f, 0, 2, 1);
        save_key(&mut f, b"a", ValueRef::Int(5), None, opts);
        save_key(&mut f, b"b", ValueRef::Bytes(&[b'z'; 50]), Some(123), opts);
        save_db_header(&mut f, 3, 1, 0);
        save_key(&mut f, b"c", ValueRef::Int(i64::MIN), None, opts);
        f.push(op::EOF);
        let crc = super::super::crc64::crc64(0, &f);
        f.extend_from_slice(&crc.to_le_bytes());
        let mut got = Vec::new();
        let info = load(&f, true, |k| {
            got.push(k);
            Ok(())
        })
        .unwrap();
        assert!(info.checksum_verified);
        assert_eq!(got.len(), 3);
        assert_eq!(got[1].value, LoadedValue::Str(vec![b'z'; 50]));
        assert_eq!(got[1].expire_ms, Some(123));
        assert_eq!(got[2].db, 3);
        assert_eq!(
            got[2].value,
            LoadedValue::Str(i64::MIN.to_string().into_bytes())
        );
        // Every truncation is an error, never a panic.
        for cut in 0..f.len() {
            assert!(load(&f[..cut], true, |_| Ok(())).is_err(), "cut at {cut}");
        }
        // Every single-byte flip is detected (by parsing or by the checksum).
        for i in 9..f.len() {
            let mut g = f.clone();
            g[i] ^= 0x5a;
            assert!(load(&g, true, |_| Ok(())).is_err(), "flip at {i}");
        }
    }

    #[test]
    fn collection_encoders_round_trip() {
        let opts = SaveOpts { compression: true };
        let long = vec![b'q'; 10_000];
        let items: Vec<Vec<u8>> = vec![
            b"a".to_vec(),
            b"5".to_vec(),
            b"-2".to_vec(),
            b"300".to_vec(),
            b"-5000".to_vec(),
            b"70000".to_vec(),
            b"-9000000".to_vec(),
            b"3000000000".to_vec(),
            i64::MIN.to_string().into_bytes(),
            b"007".to_vec(),
            vec![b'x'; 100],
            vec![b'y'; 5000],
            long.clone(),
            b"".to_vec(),
        ];
        let many: Vec<Vec<u8>> = (0..3000)
            .map(|i| format!("elem-{i}").into_bytes())
            .collect();
        for list in [&items, &many] {
            let mut out = Vec::new();
            let t = save_list(&mut out, list.iter().map(|v| &v[..]), opts);
            let mut rd = Rd { b: &out, pos: 0 };
            assert_eq!(
                load_value(&mut rd, t, 0).unwrap(),
                LoadedValue::List(list.clone())
            );
            assert_eq!(rd.pos, out.len());
        }
        let ints: Vec<Vec<u8>> = [5i64, -3, 70000, 1 << 40]
            .iter()
            .map(|v| v.to_string().into_bytes())
            .collect();
        let mut out = Vec::new();
        assert_eq!(
            save_set(&mut out, ints.iter().map(|v| &v[..]), true, opts),
            ty::SET_INTSET
        );
        let mut rd = Rd { b: &out, pos: 0 };
        let LoadedValue::Set(mut got) = load_value(&mut rd, ty::SET_INTSET, 0).unwrap() else {
            panic!()
        };
        got.sort();
        let mut want = ints.clone();
        want.sort();
        assert_eq!(got, want);
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = items.iter().map(|v| (v.clone(), v.clone())).collect();
        for compact in [true, false] {
            let mut out = Vec::new();
            let t = save_hash(
                &mut out,
                pairs.iter().map(|(a, b)| (&a[..], &b[..])),
                compact,
                opts,
            );
            let mut rd = Rd { b: &out, pos: 0 };
            assert_eq!(
                load_value(&mut rd, t, 0).unwrap(),
                LoadedValue::Hash(pairs.clone())
            );
            let z: Vec<(Vec<u8>, f64)> = vec![
                (b"a".to_vec(), -1.5),
                (b"b".to_vec(), 0.0),
                (b"c".to_vec(), 3.0),
                (b"d".to_vec(), 1e300),
                (b"e".to_vec(), f64::INFINITY),
            ];
            let mut out = Vec::new();
            let t = save_zset(&mut out, z.iter().map(|(m, s)| (&m[..], *s)), compact, opts);
            let mut rd = Rd { b: &out, pos: 0 };
            let LoadedValue::ZSet(mut got) = load_value(&mut rd, t, 0).unwrap() else {
                panic!()
            };
            got.sort_by(|a, b| a.1.total_cmp(&b.1));
            assert_eq!(got, z);
        }
    }

    #[test]
    fn random_corruption_never_panics() {
        let opts = SaveOpts { compression: true };
        let mut f = Vec::new();
        save_header(&mut f, 1, 2);
        save_db_header(&mut f, 0, 6, 1);
        save_key(
            &mut f,
            b"s",
            ValueRef::Bytes(&b"abc".repeat(20)),
            Some(9),
            opts,
        );
        let items: Vec<Vec<u8>> = (0..50)
            .map(|i| format!("{}", i * 1000 - 7).into_bytes())
            .collect();
        for (t, body) in [
            {
                let mut b = Vec::new();
                (save_list(&mut b, items.iter().map(|v| &v[..]), opts), b)
            },
            {
                let mut b = Vec::new();
                (
                    save_set(&mut b, items.iter().map(|v| &v[..]), true, opts),
                    b,
                )
            },
            {
                let mut b = Vec::new();
                let t = save_hash(&mut b, items.iter().map(|v| (&v[..], &v[..])), true, opts);
                (t, b)
            },
            {
                let mut b = Vec::new();
                let t = save_zset(&mut b, items.iter().map(|v| (&v[..], 1.5)), true, opts);
                (t, b)
            },
        ] {
            f.push(t);
            save_string(&mut f, b"k", opts);
            f.extend_from_slice(&body);
        }
        f.push(op::EOF);
        let crc = super::super::crc64::crc64(0, &f);
        f.extend_from_slice(&crc.to_le_bytes());
        assert!(load(&f, true, |_| Ok(())).is_ok());
        let mut x = 0x1234_5678u64;
        let mut rnd = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..3000 {
            let mut g = f.clone();
            for _ in 0..1 + rnd() % 4 {
                let i = 9 + (rnd() as usize) % (g.len() - 9);
                match rnd() % 3 {
                    0 => g[i] = rnd() as u8,
                    1 => g.truncate(i),
                    _ => g.insert(i, rnd() as u8),
                }
                if g.len() <= 10 {
                    break;
                }
            }
            // Without the checksum, so that the decoders see the damage.
            let _ = load(&g, false, |_| Ok(()));
        }
    }

    #[test]
    fn compact_encodings() {
        // listpack: "a", 5, -2, "hello", 300 (13-bit int)
        let mut lp = vec![0u8; 6];
        let mut push = |e: &[u8]| {
            lp.extend_from_slice(e);
            lp.push(e.len() as u8);
        };
        push(&[0x81, b'a']);
        push(&[5]);
        push(&[0xC0 | 0x1f, 0xfe]);
        push(&[0x85, b'h', b'e', b'l', b'l', b'o']);
        push(&[0xC1, 0x2c]);
        lp.push(0xFF);
        let n = lp.len() as u32;
        lp[..4].copy_from_slice(&n.to_le_bytes());
        lp[4..6].copy_from_slice(&5u16.to_le_bytes());
        let e = listpack_entries(&lp).unwrap();
        assert_eq!(
            e,
            vec![
                b"a".to_vec(),
                b"5".to_vec(),
                b"-2".to_vec(),
                b"hello".to_vec(),
                b"300".to_vec()
            ]
        );
        let mut is = Vec::new();
        is.extend_from_slice(&2u32.to_le_bytes());
        is.extend_from_slice(&2u32.to_le_bytes());
        is.extend_from_slice(&(-1i16).to_le_bytes());
        is.extend_from_slice(&7i16.to_le_bytes());
        assert_eq!(
            intset_members(&is).unwrap(),
            vec![b"-1".to_vec(), b"7".to_vec()]
        );
        assert!(intset_members(&is[..10]).is_err());
        assert!(listpack_entries(&lp[..lp.len() - 1]).is_err());
    }
}
