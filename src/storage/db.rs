//! One logical database (SELECT n) on one shard: keys, out-of-line objects and the volatile-key index.

use super::table::{self, Pos, Table};
use super::value::{
    Expiry, Kind, NewPayload, Object, OwnedValue, Payload, Record, StrRef, EMBSTR_MAX,
};
use crate::persistence::snapshot::DbSnap;
use crate::util::num;

/// How a lookup treats the key it finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// A read: updates LRU and keyspace hit/miss counters.
    Read,
    /// A write: updates LRU, no hit/miss counting (Redis's LOOKUP_WRITE).
    Write,
    /// A peek: no LRU update, counters as a read (Redis's LOOKUP_NOTOUCH: TTL, TYPE, EXISTS, OBJECT).
    NoTouch,
    /// Internal use: no LRU update, no counters.
    Silent,
}

/// How a string is encoded when stored (Redis decides per command).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StrEncoding {
    /// As tryObjectEncoding: int when it is a canonical 64-bit integer, else embstr/raw by length.
    Auto,
    /// Never int: embstr/raw by length (e.g. INCRBYFLOAT results).
    NoInt,
    /// Always raw: out of line and growable (APPEND, SETRANGE).
    Raw,
}

/// The key holds a value of another type (WRONGTYPE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WrongType;

/// Typed access to a collection at a position known to hold that type.
macro_rules! typed_access {
    ($get:ident, $get_mut:ident, $variant:ident, $ty:ty) => {
        /// The collection at `pos` (the caller checked its kind).
        pub fn $get(&self, pos: Pos) -> &$ty {
            match self.object(pos) {
                Some(Object::$variant(v)) => v,
                _ => panic!(concat!(stringify!($get), " on another type")),
            }
        }

        /// The collection at `pos`, mutably (the caller checked its kind).
        pub fn $get_mut(&mut self, pos: Pos) -> &mut $ty {
            match self.object_mut(pos) {
                Some(Object::$variant(v)) => v,
                _ => panic!(concat!(stringify!($get_mut), " on another type")),
            }
        }
    };
}

impl Db {
    typed_access!(hash, hash_mut, Hash, super::hash::HashValue);
    typed_access!(list, list_mut, List, super::list::ListValue);
    typed_access!(set, set_mut, Set, super::set::SetValue);
    typed_access!(zset, zset_mut, ZSet, super::zset::ZSetValue);
}

/// Counters Redis reports in INFO stats, kept per database and summed per shard.
#[derive(Clone, Copy, Debug, Default)]
pub struct KeyStats {
    /// keyspace_hits.
    pub hits: u64,
    /// keyspace_misses.
    pub misses: u64,
    /// expired_keys.
    pub expired: u64,
}

/// Out-of-line objects, addressed by a u32 index stored in the record.
#[derive(Debug, Default)]
struct Slab {
    objects: Vec<Option<Object>>,
    free: Vec<u32>,
}

impl Slab {
    fn insert(&mut self, o: Object) -> u32 {
        if let Some(i) = self.free.pop() {
            self.objects[i as usize] = Some(o);
            i
        } else {
            self.objects.push(Some(o));
            (self.objects.len() - 1) as u32
        }
    }

    fn take(&mut self, i: u32) -> Object {
        let o = self.objects[i as usize].take().expect("live slab index");
        self.free.push(i);
        o
    }

    fn get(&self, i: u32) -> &Object {
        self.objects[i as usize].as_ref().expect("live slab index")
    }

    fn get_mut(&mut self, i: u32) -> &mut Object {
        self.objects[i as usize].as_mut().expect("live slab index")
    }
}

/// The 24-bit LRU clock for `now_ms` (seconds resolution, as Redis's LRU_CLOCK).
#[inline]
pub fn lru_clock(now_ms: u64) -> u32 {
    ((now_ms / 1000) & 0xff_ffff) as u32
}

/// One database: see the module docs.
#[derive(Debug, Default)]
pub struct Db {
    table: Table<Record>,
    slab: Slab,
    /// Keys that have a TTL, so active expiry samples only those (Redis's
    /// `expires` dict): the table tag of each, not a copy of the key. A record
    /// with a TTL stores its index here, which tells it apart from other
    /// records with the same tag (see [`Db::volatile_pos`]).
    volatile: Vec<u32>,
    /// Counters for INFO.
    pub stats: KeyStats,
    /// Estimated average remaining TTL in ms of keys with a TTL (INFO keyspace avg_ttl),
    /// a running average over active-expiry samples as Redis keeps it.
    pub avg_ttl: u64,
    /// The snapshot in progress over this database, if any.
    snap: Option<Box<DbSnap>>,
    /// The snapshot bit new and serialized records carry; a record with the
    /// other value is still to be serialized by the snapshot in progress.
    fresh_bit: bool,
    /// Contents emptied (FLUSHDB/FLUSHALL) during a snapshot, still to be
    /// serialized by its walker: (table, slab, snapshot, fresh bit).
    detached: Option<Box<Detached>>,
    /// Keys created since the blocking framework last looked (recorded only while
    /// `track_created`): Redis's signalKeyAsReady from dbAdd, since a blocked client
    /// only ever waits on a missing key.
    pub created: Vec<Box<[u8]>>,
    /// Set by `server::blocking` while clients are blocked on keys of this shard.
    pub track_created: bool,
    /// A process-unique id: SWAPDB moves databases between indexes, and the
    /// blocking framework notices by the id (Redis then rescans the waited keys).
    pub uid: u64,
    /// Keys some client WATCHes: every modification of one bumps its version,
    /// so EXEC can tell whether it changed (the one hook for all commands).
    pub watch: WatchMap,
}

/// Versions of the watched keys of one database (see [`Db::watch`]).
#[derive(Debug, Default)]
pub struct WatchMap {
    map: std::collections::HashMap<Box<[u8]>, WatchEntry>,
    clock: u64,
}

/// One watched key: how many WATCHes hold it and when it last changed.
#[derive(Debug, Clone, Copy, Default)]
struct WatchEntry {
    refs: u32,
    /// Clock value of the last modification (0: none since watched).
    version: u64,
    /// Clock value of the last deletion by expiry.
    expired_version: u64,
}

/// What a WATCH recorded, to compare at EXEC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchMark {
    /// The key's modification version when watched.
    pub version: u64,
    /// The key's expiry-deletion version when watched.
    pub expired_version: u64,
    /// The key was already logically expired when watched (Redis's `wk->expired`).
    pub expired: bool,
}

impl WatchMap {
    /// True when nobody watches any key here (the fast path of every write).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Records a modification of `key` (a no-op unless it is watched).
    #[inline]
    fn touch(&mut self, key: &[u8]) {
        if self.map.is_empty() {
            return;
        }
        self.touch_slow(key, false);
    }

    /// Records the deletion of `key` because it expired.
    #[inline]
    fn touch_expired(&mut self, key: &[u8]) {
        if self.map.is_empty() {
            return;
        }
        self.touch_slow(key, true);
    }

    #[cold]
    fn touch_slow(&mut self, key: &[u8], expired: bool) {
        if let Some(e) = self.map.get_mut(key) {
            self.clock += 1;
            if expired {
                e.expired_version = self.clock;
            } else {
                e.version = self.clock;
            }
        }
    }
}

/// Contents detached from a database by a flush while its snapshot runs.
#[derive(Debug)]
struct Detached {
    table: Table<Record>,
    slab: Slab,
    snap: Box<DbSnap>,
    fresh_bit: bool,
}

/// The slab index a payload points at, if any.
#[inline]
fn slab_index(p: Payload<'_>) -> Option<u32> {
    match p {
        Payload::Slab(i) => Some(i),
        _ => None,
    }
}

/// Parses a stored-string candidate as Redis's int encoding would.
#[inline]
fn as_int(v: &[u8]) -> Option<i64> {
    if v.len() <= 20 {
        num::parse_i64(v)
    } else {
        None
    }
}

impl Db {
    /// An empty database.
    pub fn new() -> Self {
        static NEXT_UID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Db {
            uid: NEXT_UID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            ..Db::default()
        }
    }

    /// Number of keys (including ones expired but not yet collected, as DBSIZE).
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True when the database holds no keys.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Number of keys with a TTL.
    pub fn volatile_len(&self) -> usize {
        self.volatile.len()
    }

    /// Starts loading the table lines and records that looking up the keys
    /// with these hashes will touch, for all of them before any is used: a
    /// pipelined batch then waits for its cache misses together, not one by one.
    pub fn prefetch(&self, hashes: &[u64]) {
        for &h in hashes {
            self.table.prefetch_home(h);
        }
        for &h in hashes {
            self.table.prefetch_entry(h);
        }
    }

    /// Finds a live key. An expired key is deleted on the way (lazy expiry).
    #[inline]
    pub fn find(&mut self, key: &[u8], now_ms: u64, access: Access) -> Option<Pos> {
        let found = self.table.find(key);
        let pos = match found {
            Some(p) => {
                let rec = self.table.at(p);
                match rec.expire_at() {
                    Some(at) if at < now_ms => {
                        self.remove_expired_at(p);
                        self.stats.expired += 1;
                        None
                    }
                    _ => Some(p),
                }
            }
            None => None,
        };
        match access {
            Access::Read | Access::NoTouch => {
                if pos.is_some() {
                    self.stats.hits += 1;
                } else {
                    self.stats.misses += 1;
                }
            }
            Access::Write | Access::Silent => {}
        }
        if let (Some(p), Access::Read | Access::Write) = (pos, access) {
            self.table.at_mut(p).set_lru(lru_clock(now_ms));
        }
        pos
    }

    /// True when `key` exists and is live, without side effects on counters or LRU.
    pub fn contains(&mut self, key: &[u8], now_ms: u64) -> bool {
        self.find(key, now_ms, Access::Silent).is_some()
    }

    /// The record at `pos`.
    #[inline]
    pub fn record(&self, pos: Pos) -> &Record {
        self.table.at(pos)
    }

    /// The value's type at `pos`.
    #[inline]
    pub fn kind(&self, pos: Pos) -> Kind {
        self.table.at(pos).kind()
    }

    /// The string at `pos`, or None when the value is not a string.
    #[inline]
    pub fn str_at(&self, pos: Pos) -> Option<StrRef<'_>> {
        let rec = self.table.at(pos);
        match rec.payload() {
            Payload::Inline(b) => Some(StrRef::Bytes(b)),
            Payload::Int(i) => Some(StrRef::Int(i)),
            Payload::Slab(i) => match self.slab.get(i) {
                Object::RawStr(v) => Some(StrRef::Bytes(v)),
                _ => None,
            },
        }
    }

    /// The OBJECT ENCODING name of the value at `pos`.
    pub fn encoding_name(&self, pos: Pos) -> &'static str {
        let rec = self.table.at(pos);
        match rec.payload() {
            Payload::Int(_) => "int",
            Payload::Inline(_) => "embstr",
            Payload::Slab(i) => self.slab.get(i).encoding_name(),
        }
    }

    /// The slab object at `pos`, mutably, if the value lives out of line.
    pub fn object_mut(&mut self, pos: Pos) -> Option<&mut Object> {
        self.cow(pos);
        self.watch.touch(self.table.at(pos).key());
        match self.table.at(pos).payload() {
            Payload::Slab(i) => Some(self.slab.get_mut(i)),
            _ => None,
        }
    }

    /// Deletes the key at `pos`.
    pub fn remove_at(&mut self, pos: Pos) {
        let _ = self.take_at(pos);
    }

    /// Deletes the key at `pos` because it expired (watchers see an expiry, not a write).
    fn remove_expired_at(&mut self, pos: Pos) {
        if !self.watch.is_empty() {
            self.cow(pos);
            let key = self.table.at(pos).key().to_vec();
            self.watch.touch_expired(&key);
            let rec = self.table.remove_at(pos);
            self.drop_record(rec);
            return;
        }
        self.remove_at(pos);
    }

    /// Frees what a removed record owned.
    fn drop_record(&mut self, rec: Record) {
        if let Some(e) = rec.expiry() {
            self.unindex_volatile(e.volatile_idx);
        }
        if let Payload::Slab(i) = rec.payload() {
            self.slab.take(i);
        }
    }

    /// Deletes `key` if it exists (expired or not); true when something was deleted live.
    pub fn delete(&mut self, key: &[u8], now_ms: u64) -> bool {
        match self.find(key, now_ms, Access::Silent) {
            Some(p) => {
                self.remove_at(p);
                true
            }
            None => false,
        }
    }

    /// Removes the key at `pos` and returns its value and absolute expiry.
    pub fn take_at(&mut self, pos: Pos) -> (OwnedValue, Option<u64>) {
        self.cow(pos);
        self.watch.touch(self.table.at(pos).key());
        let rec = self.table.remove_at(pos);
        let expiry = rec.expiry();
        if let Some(e) = expiry {
            self.unindex_volatile(e.volatile_idx);
        }
        let value = match rec.payload() {
            Payload::Inline(b) => OwnedValue::Inline(b.to_vec()),
            Payload::Int(i) if rec.own_int() => OwnedValue::OwnInt(i),
            Payload::Int(i) => OwnedValue::Int(i),
            Payload::Slab(i) => OwnedValue::Object(self.slab.take(i)),
        };
        (value, expiry.map(|e| e.at_ms))
    }

    /// The key at `pos` exactly as stored (value, absolute expiry): what a
    /// script's undo log restores with [`Db::insert_owned`].
    pub fn image_at(&self, pos: Pos) -> (OwnedValue, Option<u64>) {
        let rec = self.table.at(pos);
        let value = match rec.payload() {
            Payload::Inline(b) => OwnedValue::Inline(b.to_vec()),
            Payload::Int(i) if rec.own_int() => OwnedValue::OwnInt(i),
            Payload::Int(i) => OwnedValue::Int(i),
            Payload::Slab(i) => OwnedValue::Object(self.slab.get(i).clone()),
        };
        (value, rec.expire_at())
    }

    /// A copy of the value at `pos` (for COPY: a new object, never a shared integer).
    pub fn clone_at(&self, pos: Pos) -> OwnedValue {
        match self.table.at(pos).payload() {
            Payload::Inline(b) => OwnedValue::Inline(b.to_vec()),
            Payload::Int(i) => OwnedValue::OwnInt(i),
            Payload::Slab(i) => OwnedValue::Object(self.slab.get(i).clone()),
        }
    }

    /// Stores `value` under `key` with an absolute expiry, replacing any existing key.
    pub fn insert_owned(
        &mut self,
        key: &[u8],
        value: OwnedValue,
        expire_at: Option<u64>,
        now_ms: u64,
    ) {
        if let Some(p) = self.table.find(key) {
            self.remove_at(p);
        }
        self.watch.touch(key);
        let expiry = expire_at.map(|at| self.index_volatile(key, at));
        let lru = lru_clock(now_ms);
        let rec = match value {
            OwnedValue::Int(i) => Record::new(key, NewPayload::Int(i), expiry, lru),
            OwnedValue::OwnInt(i) => {
                let mut r = Record::new(key, NewPayload::Int(i), expiry, lru);
                r.set_own_int(true);
                r
            }
            OwnedValue::Inline(b) => Record::new(key, NewPayload::Inline(&b), expiry, lru),
            OwnedValue::Object(o) => {
                let kind = o.kind();
                let idx = self.slab.insert(o);
                Record::new(key, NewPayload::Slab(kind, idx), expiry, lru)
            }
        };
        let p = self.table.insert_new_hashed(table::hash(key), rec);
        self.mark_fresh(p);
        self.note_created(key);
    }

    /// Records a key creation for the blocking framework (see `created`).
    #[inline]
    fn note_created(&mut self, key: &[u8]) {
        if self.track_created {
            self.created.push(key.into());
        }
    }

    /// Stores a string, replacing any existing key. `keep_ttl` keeps an existing
    /// key's TTL, otherwise `expire_at` (absolute ms) or none is set.
    pub fn set_str(
        &mut self,
        key: &[u8],
        value: &[u8],
        enc: StrEncoding,
        expire_at: Option<u64>,
        keep_ttl: bool,
        now_ms: u64,
    ) {
        self.watch.touch(key);
        let h = table::hash(key);
        let existing = self.table.find_hashed(h, key);
        let mut expire_at = expire_at;
        if let Some(p) = existing {
            self.cow(p);
            if keep_ttl {
                expire_at = self.table.at(p).expire_at();
            }
            // Reuse the old record's volatile slot when both have a TTL.
            let old = self.table.at(p);
            let old_payload = slab_index(old.payload());
            let old_exp = old.expiry();
            if let (Some(at), Some(e)) = (expire_at, old_exp) {
                self.release_payload(old_payload);
                let payload = self.new_str_payload(value, enc);
                let expiry = Expiry {
                    at_ms: at,
                    volatile_idx: e.volatile_idx,
                };
                self.table
                    .at_mut(p)
                    .replace(payload, Some(expiry), lru_clock(now_ms));
                self.mark_fresh(p);
                return;
            }
            if expire_at.is_none() && old_exp.is_none() {
                self.release_payload(old_payload);
                let payload = self.new_str_payload(value, enc);
                self.table
                    .at_mut(p)
                    .replace(payload, None, lru_clock(now_ms));
                self.mark_fresh(p);
                return;
            }
            self.remove_at(p);
        }
        let payload = self.new_str_payload(value, enc);
        let expiry = expire_at.map(|at| self.index_volatile(key, at));
        let rec = Record::new(key, payload, expiry, lru_clock(now_ms));
        let p = self.table.insert_new_hashed(h, rec);
        self.mark_fresh(p);
    }

    fn release_payload(&mut self, slab_idx: Option<u32>) {
        if let Some(i) = slab_idx {
            self.slab.take(i);
        }
    }

    fn new_str_payload<'a>(&mut self, value: &'a [u8], enc: StrEncoding) -> NewPayload<'a> {
        if enc == StrEncoding::Auto {
            if let Some(i) = as_int(value) {
                return NewPayload::Int(i);
            }
        }
        if enc != StrEncoding::Raw && value.len() <= EMBSTR_MAX {
            NewPayload::Inline(value)
        } else {
            NewPayload::Slab(
                Kind::String,
                self.slab.insert(Object::RawStr(value.to_vec())),
            )
        }
    }

    /// Stores an integer value at an existing string key, in place when possible (INCR).
    pub fn set_int_at(&mut self, pos: Pos, v: i64) {
        self.cow(pos);
        self.watch.touch(self.table.at(pos).key());
        if self.table.at_mut(pos).set_int_in_place(v) {
            return;
        }
        let rec = self.table.at(pos);
        let old_payload = slab_index(rec.payload());
        let expiry = rec.expiry();
        let lru = rec.lru();
        self.release_payload(old_payload);
        self.table
            .at_mut(pos)
            .replace(NewPayload::Int(v), expiry, lru);
        self.mark_fresh(pos);
    }

    /// Makes the string at `pos` a growable raw string and returns it (APPEND, SETRANGE).
    pub fn raw_str_at(&mut self, pos: Pos) -> &mut Vec<u8> {
        self.cow(pos);
        self.watch.touch(self.table.at(pos).key());
        let rec = self.table.at(pos);
        if let Payload::Slab(i) = rec.payload() {
            if let Object::RawStr(v) = self.slab.get_mut(i) {
                return v;
            }
            unreachable!("raw_str_at on a non-string");
        }
        let bytes = self.str_at(pos).expect("a string").to_vec();
        let rec = self.table.at(pos);
        let (expiry, lru) = (rec.expiry(), rec.lru());
        let idx = self.slab.insert(Object::RawStr(bytes));
        self.table
            .at_mut(pos)
            .replace(NewPayload::Slab(Kind::String, idx), expiry, lru);
        self.mark_fresh(pos);
        match self.slab.get_mut(idx) {
            Object::RawStr(v) => v,
            _ => unreachable!("just inserted a raw string"),
        }
    }

    /// Looks up `key` expecting a value of `kind`: Ok(None) when missing,
    /// Err(WrongType) when it holds another type.
    #[inline]
    pub fn find_kind(
        &mut self,
        key: &[u8],
        now_ms: u64,
        access: Access,
        kind: Kind,
    ) -> Result<Option<Pos>, WrongType> {
        match self.find(key, now_ms, access) {
            Some(p) if self.kind(p) == kind => Ok(Some(p)),
            Some(_) => Err(WrongType),
            None => Ok(None),
        }
    }

    /// The out-of-line object at `pos` (collections and raw strings).
    pub fn object(&self, pos: Pos) -> Option<&Object> {
        match self.table.at(pos).payload() {
            Payload::Slab(i) => Some(self.slab.get(i)),
            _ => None,
        }
    }

    /// Stores a new collection under `key` (which must be absent) and returns its position.
    pub fn create_object(&mut self, key: &[u8], obj: Object, now_ms: u64) -> Pos {
        self.watch.touch(key);
        let kind = obj.kind();
        let idx = self.slab.insert(obj);
        let rec = Record::new(key, NewPayload::Slab(kind, idx), None, lru_clock(now_ms));
        let p = self.table.insert_new_hashed(table::hash(key), rec);
        self.mark_fresh(p);
        self.note_created(key);
        p
    }

    /// Deletes the key at `pos` when its collection is empty, as Redis does
    /// after every removal; true when it was deleted.
    pub fn delete_if_empty(&mut self, pos: Pos) -> bool {
        if self
            .object(pos)
            .is_some_and(|o| o.is_empty() && o.kind() != Kind::String)
        {
            self.remove_at(pos);
            true
        } else {
            false
        }
    }

    /// Makes the key at `pos` look idle for `secs` seconds (RESTORE ... IDLETIME).
    pub fn set_idle_at(&mut self, pos: Pos, secs: u64, now_ms: u64) {
        let clock = u64::from(lru_clock(now_ms));
        // The clock wraps every 2^24 s, as Redis's does: idle times wrap with it.
        let lru = (clock + (1 << 24) - (secs & 0xff_ffff)) & 0xff_ffff;
        self.table.at_mut(pos).set_lru(lru as u32);
    }

    /// The absolute expiry (ms) of the key at `pos`.
    pub fn expire_at(&self, pos: Pos) -> Option<u64> {
        self.table.at(pos).expire_at()
    }

    /// Sets or clears the expiry of the key at `pos`.
    pub fn set_expire_at(&mut self, pos: Pos, at: Option<u64>) {
        self.cow(pos);
        let rec = self.table.at(pos);
        if rec.expiry().is_some() || at.is_some() {
            self.watch.touch(rec.key());
        }
        let rec = self.table.at(pos);
        match (rec.expiry(), at) {
            (Some(mut e), Some(at)) => {
                e.at_ms = at;
                self.table.at_mut(pos).set_expiry_in_place(e);
            }
            (None, None) => {}
            (Some(e), None) => {
                let rec = self.table.at(pos).with_expiry(None);
                *self.table.at_mut(pos) = rec;
                self.mark_fresh(pos);
                self.unindex_volatile(e.volatile_idx);
            }
            (None, Some(at)) => {
                let key = rec.key().to_vec();
                let e = self.index_volatile(&key, at);
                let rec = self.table.at(pos).with_expiry(Some(e));
                *self.table.at_mut(pos) = rec;
                self.mark_fresh(pos);
            }
        }
    }

    fn index_volatile(&mut self, key: &[u8], at_ms: u64) -> Expiry {
        self.volatile.push(table::tag_of(table::hash(key)));
        Expiry {
            at_ms,
            volatile_idx: (self.volatile.len() - 1) as u32,
        }
    }

    /// The record indexed at `idx` of the volatile index: the one with that
    /// entry's tag whose expiry metadata points back at `idx`.
    fn volatile_pos(&self, idx: usize) -> Option<Pos> {
        let tag = *self.volatile.get(idx)?;
        self.table.find_tag_by(tag, |r| {
            r.expiry().is_some_and(|e| e.volatile_idx as usize == idx)
        })
    }

    fn unindex_volatile(&mut self, idx: u32) {
        let idx = idx as usize;
        let last = self.volatile.len() - 1;
        if idx == last {
            self.volatile.pop();
            return;
        }
        // The last entry moves into `idx`: find its record while it still
        // points at `last`, then tell it.
        let moved = self.volatile_pos(last);
        self.volatile.swap_remove(idx);
        if let Some(p) = moved {
            let rec = self.table.at_mut(p);
            if let Some(mut e) = rec.expiry() {
                e.volatile_idx = idx as u32;
                rec.set_expiry_in_place(e);
            }
        }
    }

    /// Samples up to `n` keys with a TTL and deletes the expired ones; returns (sampled, expired).
    pub fn expire_sample(
        &mut self,
        n: usize,
        now_ms: u64,
        mut rand: impl FnMut() -> u64,
    ) -> (usize, usize) {
        let mut sampled = 0;
        let mut expired = 0;
        // Wide enough for TTLs near i64::MAX (PEXPIREAT with a huge time).
        let mut ttl_sum = 0u128;
        let mut ttl_n = 0u128;
        for _ in 0..n {
            if self.volatile.is_empty() {
                break;
            }
            sampled += 1;
            let i = (rand() % self.volatile.len() as u64) as usize;
            let Some(p) = self.volatile_pos(i) else {
                continue;
            };
            match self.table.at(p).expire_at() {
                Some(at) if at < now_ms => {
                    self.remove_expired_at(p);
                    self.stats.expired += 1;
                    expired += 1;
                }
                Some(at) => {
                    ttl_sum += (at - now_ms) as u128;
                    ttl_n += 1;
                }
                None => {}
            }
        }
        if let Some(avg) = ttl_sum.checked_div(ttl_n) {
            let avg = avg as u64;
            self.avg_ttl = if self.avg_ttl == 0 {
                avg
            } else {
                (self.avg_ttl / 50) * 49 + avg / 50
            };
        }
        if self.volatile.is_empty() {
            self.avg_ttl = 0;
        }
        (sampled, expired)
    }

    /// A random live key, deleting expired ones it meets (RANDOMKEY).
    pub fn random_key(&mut self, now_ms: u64, mut rand: impl FnMut() -> u64) -> Option<Vec<u8>> {
        for _ in 0..100 {
            let p = self.table.random_pos(&mut rand)?;
            let rec = self.table.at(p);
            match rec.expire_at() {
                Some(at) if at < now_ms => {
                    self.remove_expired_at(p);
                    self.stats.expired += 1;
                }
                _ => return Some(rec.key().to_vec()),
            }
        }
        None
    }

    /// Visits keys from `cursor` (see `Table::scan`); returns the next cursor.
    pub fn scan(&self, cursor: u32, count: usize, f: impl FnMut(&Record)) -> u32 {
        self.table.scan(cursor, count, f)
    }

    /// Calls `f` for every record (expired ones included; check `expire_at`).
    pub fn for_each(&self, f: impl FnMut(&Record)) {
        self.table.for_each(f)
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        // A snapshot in progress still needs the old contents: hand them to
        // its walker instead of serializing them all now.
        if let Some(snap) = self.snap.take() {
            while self.detached.is_some() {
                self.snapshot_step(usize::MAX);
            }
            self.detached = Some(Box::new(Detached {
                table: std::mem::take(&mut self.table),
                slab: std::mem::take(&mut self.slab),
                snap,
                fresh_bit: self.fresh_bit,
            }));
        }
        self.touch_all_watched(None);
        self.table.clear();
        self.slab = Slab::default();
        self.volatile = Vec::new();
        self.avg_ttl = 0;
    }
}

/// Snapshot hooks: see `persistence::snapshot` for the design.
impl Db {
    /// Gives a new record (or a rebuilt one) the bit of records that need no serializing.
    #[inline]
    fn mark_fresh(&mut self, pos: Pos) {
        let f = self.fresh_bit;
        self.table.at_mut(pos).set_snap_bit(f);
    }

    /// Before the record at `pos` changes or goes: serializes it if the
    /// snapshot in progress has not yet (copy-on-write at the key level).
    #[inline]
    fn cow(&mut self, pos: Pos) {
        if self.snap.is_some() {
            self.cow_slow(pos);
        }
    }

    #[cold]
    fn cow_slow(&mut self, pos: Pos) {
        let fresh = self.fresh_bit;
        let Some(snap) = self.snap.as_mut() else {
            return;
        };
        let rec = self.table.at_mut(pos);
        if rec.snap_bit() != fresh {
            let before = snap.buf.len();
            serialize(&mut snap.buf, rec, &self.slab, snap.opts);
            snap.cow_bytes += (snap.buf.len() - before) as u64;
            snap.keys += 1;
            rec.set_snap_bit(fresh);
            snap.maybe_flush();
        }
    }

    /// Starts a snapshot of this database: every record present now is
    /// pending until the walker or a write hook serializes it.
    pub fn snapshot_begin(&mut self, snap: DbSnap) {
        // Finish a previous one first (cannot happen: one snapshot at a time).
        while !self.snapshot_step(usize::MAX) {}
        while self.detached.is_some() {
            self.snapshot_step(usize::MAX);
        }
        self.fresh_bit = !self.fresh_bit;
        self.snap = Some(Box::new(snap));
    }

    /// True while a snapshot of this database is in progress.
    pub fn snapshot_active(&self) -> bool {
        self.snap.is_some() || self.detached.is_some()
    }

    /// Serializes up to `count` more records; true when the snapshot of this
    /// database is complete (its last bytes are then handed to the writer).
    pub fn snapshot_step(&mut self, count: usize) -> bool {
        if let Some(d) = self.detached.as_mut() {
            let Detached {
                table,
                slab,
                snap,
                fresh_bit,
            } = &mut **d;
            let next = walk(table, slab, snap, *fresh_bit, count);
            if next == 0 {
                if let Some(mut d) = self.detached.take() {
                    d.snap.finish();
                }
            } else {
                snap.cursor = next;
            }
            return false;
        }
        let fresh = self.fresh_bit;
        let Some(snap) = self.snap.as_mut() else {
            return true;
        };
        let next = walk(&mut self.table, &self.slab, snap, fresh, count);
        if next == 0 {
            if let Some(mut s) = self.snap.take() {
                s.finish();
            }
            true
        } else {
            snap.cursor = next;
            false
        }
    }
}

/// Serializes up to `count` pending records from the snapshot's cursor; the next cursor (0: done).
fn walk(
    table: &mut Table<Record>,
    slab: &Slab,
    snap: &mut DbSnap,
    fresh: bool,
    count: usize,
) -> u32 {
    let opts = snap.opts;
    let next = table.scan_mut(snap.cursor, count, |rec| {
        if rec.snap_bit() != fresh {
            serialize(&mut snap.buf, rec, slab, opts);
            snap.keys += 1;
            rec.set_snap_bit(fresh);
        }
    });
    snap.maybe_flush();
    next
}

/// Appends one record in RDB form.
fn serialize(
    out: &mut Vec<u8>,
    rec: &Record,
    slab: &Slab,
    opts: crate::persistence::rdb::SaveOpts,
) {
    use crate::persistence::rdb::{save_key, ValueRef};
    let value = match rec.payload() {
        Payload::Inline(b) => ValueRef::Bytes(b),
        Payload::Int(i) => ValueRef::Int(i),
        Payload::Slab(i) => ValueRef::Object(slab.get(i)),
    };
    save_key(out, rec.key(), value, rec.expire_at(), opts);
}

impl Db {
    /// Marks the watched keys that exist here (or in `other`) as modified:
    /// Redis's touchAllWatchedKeysInDb for FLUSHDB/FLUSHALL/SWAPDB.
    pub fn touch_all_watched(&mut self, other: Option<&Db>) {
        if self.watch.is_empty() {
            return;
        }
        let keys: Vec<Box<[u8]>> = self.watch.map.keys().cloned().collect();
        for k in keys {
            let here = self.table.find(&k).is_some();
            if here || other.is_some_and(|o| o.table.find(&k).is_some()) {
                self.watch.touch_slow(&k, false);
            }
        }
    }

    /// WATCH: starts watching `key` and returns what EXEC compares against.
    pub fn watch_add(&mut self, key: &[u8], now_ms: u64) -> WatchMark {
        let expired = self
            .table
            .find(key)
            .and_then(|p| self.table.at(p).expire_at())
            .is_some_and(|at| at < now_ms);
        let e = self.watch.map.entry(key.into()).or_default();
        e.refs += 1;
        WatchMark {
            version: e.version,
            expired_version: e.expired_version,
            expired,
        }
    }

    /// UNWATCH of one key watched with [`Db::watch_add`].
    pub fn watch_remove(&mut self, key: &[u8]) {
        if let Some(e) = self.watch.map.get_mut(key) {
            e.refs = e.refs.saturating_sub(1);
            if e.refs == 0 {
                self.watch.map.remove(key);
            }
        }
    }

    /// True when `key` changed since `mark` was taken, as EXEC judges it:
    /// modified, or expired since (unless it was already expired when watched).
    pub fn watch_dirty(&self, key: &[u8], mark: WatchMark, now_ms: u64) -> bool {
        let Some(e) = self.watch.map.get(key) else {
            return true;
        };
        if e.version != mark.version {
            return true;
        }
        if mark.expired {
            return false;
        }
        if e.expired_version != mark.expired_version {
            return true;
        }
        self.table
            .find(key)
            .and_then(|p| self.table.at(p).expire_at())
            .is_some_and(|at| at < now_ms)
    }

    /// Swaps the contents of two databases (SWAPDB) while the watched keys stay
    /// with their database numbers; watchers of keys present in either are touched.
    pub fn swap_dbs(dbs: &mut [Db], a: usize, b: usize) {
        if a == b {
            return;
        }
        let (lo, hi) = (a.min(b), a.max(b));
        let (x, y) = dbs.split_at_mut(hi);
        let (da, db) = (&mut x[lo], &mut y[0]);
        da.touch_all_watched(Some(db));
        db.touch_all_watched(Some(da));
        std::mem::swap(da, db);
        std::mem::swap(&mut da.watch, &mut db.watch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_pick_redis_encodings() {
        let mut db = Db::new();
        db.set_str(b"a", b"12345", StrEncoding::Auto, None, false, 0);
        db.set_str(b"b", b"hello", StrEncoding::Auto, None, false, 0);
        db.set_str(b"c", &[b'x'; 45], StrEncoding::Auto, None, false, 0);
        db.set_str(b"d", b"007", StrEncoding::Auto, None, false, 0);
        db.set_str(b"e", b"5", StrEncoding::NoInt, None, false, 0);
        let enc = |db: &mut Db, k: &[u8]| {
            let p = db.find(k, 0, Access::Silent).unwrap();
            db.encoding_name(p)
        };
        assert_eq!(enc(&mut db, b"a"), "int");
        assert_eq!(enc(&mut db, b"b"), "embstr");
        assert_eq!(enc(&mut db, b"c"), "raw");
        assert_eq!(enc(&mut db, b"d"), "embstr");
        assert_eq!(enc(&mut db, b"e"), "embstr");
        let p = db.find(b"b", 0, Access::Silent).unwrap();
        db.raw_str_at(p).extend_from_slice(b"!");
        let p = db.find(b"b", 0, Access::Silent).unwrap();
        assert_eq!(db.encoding_name(p), "raw");
        assert_eq!(db.str_at(p), Some(StrRef::Bytes(b"hello!")));
    }

    #[test]
    fn lazy_expiry_and_volatile_index() {
        let mut db = Db::new();
        for i in 0..100u32 {
            let k = format!("k{i}");
            db.set_str(
                k.as_bytes(),
                b"v",
                StrEncoding::Auto,
                Some(1000 + i as u64),
                false,
                0,
            );
        }
        assert_eq!(db.volatile_len(), 100);
        // Persist a few, delete a few: the index stays consistent.
        for i in 0..10u32 {
            let k = format!("k{i}");
            let p = db.find(k.as_bytes(), 0, Access::Silent).unwrap();
            db.set_expire_at(p, None);
            let k = format!("k{}", 50 + i);
            db.delete(k.as_bytes(), 0);
        }
        assert_eq!(db.volatile_len(), 80);
        for i in 0..db.volatile.len() {
            let p = db.volatile_pos(i).unwrap();
            assert_eq!(db.record(p).expiry().unwrap().volatile_idx as usize, i);
        }
        // At t=1050 keys k10..k49 have at < now except those at >= 1050.
        assert!(db.find(b"k10", 1050, Access::Read).is_none());
        assert!(db.find(b"k0", 5000, Access::Read).is_some(), "persisted");
        let mut x = 1u64;
        let mut rand = || {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            x >> 11
        };
        let mut total = 0;
        for _ in 0..200 {
            total += db.expire_sample(20, 10_000, &mut rand).1;
        }
        assert_eq!(db.volatile_len(), 0);
        assert_eq!(total, 79);
        assert_eq!(db.len(), 10);
    }

    #[test]
    fn snapshot_is_point_in_time() {
        use crate::persistence::rdb::{self, LoadedValue, SaveOpts};
        use crate::persistence::snapshot::{DbSnap, WriterMsg};
        let mut db = Db::new();
        for i in 0..2000u32 {
            let k = format!("k{i}");
            db.set_str(k.as_bytes(), b"old", StrEncoding::Auto, None, false, 0);
        }
        let (tx, rx) = std::sync::mpsc::channel();
        db.snapshot_begin(DbSnap::new(0, tx, SaveOpts { compression: false }));
        assert!(!db.snapshot_step(100));
        // Overwrite, delete, expire, append and create keys while the walker is part-way.
        for i in 0..2000u32 {
            let k = format!("k{i}");
            match i % 4 {
                0 => db.set_str(k.as_bytes(), b"new", StrEncoding::Auto, None, false, 0),
                1 => {
                    db.delete(k.as_bytes(), 0);
                }
                2 => {
                    let p = db.find(k.as_bytes(), 0, Access::Write).unwrap();
                    db.raw_str_at(p).extend_from_slice(b"!");
                }
                _ => {
                    let p = db.find(k.as_bytes(), 0, Access::Write).unwrap();
                    db.set_expire_at(p, Some(5));
                }
            }
            db.set_str(
                format!("n{i}").as_bytes(),
                b"x",
                StrEncoding::Auto,
                None,
                false,
                0,
            );
        }
        while !db.snapshot_step(100) {}
        let mut bytes = Vec::new();
        for m in rx.try_iter() {
            if let WriterMsg::Chunk { bytes: b, .. } = m {
                bytes.extend(b);
            }
        }
        let mut file = b"REDIS0010".to_vec();
        file.extend(bytes);
        file.push(rdb::op::EOF);
        file.extend_from_slice(&[0; 8]);
        let mut n = 0;
        rdb::load(&file, false, |k| {
            assert!(k.key.starts_with(b"k"), "{:?}", k.key);
            assert_eq!(k.value, LoadedValue::Str(b"old".to_vec()));
            assert_eq!(k.expire_ms, None);
            n += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 2000);
        // A second snapshot sees the new contents.
        let (tx, rx) = std::sync::mpsc::channel();
        db.snapshot_begin(DbSnap::new(0, tx, SaveOpts { compression: false }));
        while !db.snapshot_step(7) {}
        let total: usize = rx
            .try_iter()
            .map(|m| match m {
                WriterMsg::Chunk { bytes, .. } => bytes.len(),
                _ => 0,
            })
            .sum();
        assert!(total > 0);
        assert_eq!(db.len(), 1500 + 2000);
        // FLUSHDB during a snapshot: the old contents are still written, the new ones not.
        let (tx, rx) = std::sync::mpsc::channel();
        db.snapshot_begin(DbSnap::new(0, tx, SaveOpts { compression: false }));
        assert!(!db.snapshot_step(10));
        db.clear();
        db.set_str(b"after", b"x", StrEncoding::Auto, None, false, 0);
        assert!(db.snapshot_active());
        while !db.snapshot_step(100) {}
        assert!(!db.snapshot_active());
        let mut file = b"REDIS0010".to_vec();
        for m in rx.try_iter() {
            if let WriterMsg::Chunk { bytes, .. } = m {
                file.extend(bytes);
            }
        }
        file.push(rdb::op::EOF);
        file.extend_from_slice(&[0; 8]);
        let mut n = 0;
        rdb::load(&file, false, |k| {
            assert_ne!(k.key, b"after");
            n += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 3500);
        assert_eq!(db.len(), 1);
    }

    #[test]
    fn set_keeps_or_replaces_ttl() {
        let mut db = Db::new();
        db.set_str(b"k", b"1", StrEncoding::Auto, Some(500), false, 0);
        db.set_str(b"k", b"2", StrEncoding::Auto, None, true, 0);
        let p = db.find(b"k", 0, Access::Silent).unwrap();
        assert_eq!(db.expire_at(p), Some(500));
        db.set_str(b"k", b"3", StrEncoding::Auto, None, false, 0);
        let p = db.find(b"k", 0, Access::Silent).unwrap();
        assert_eq!(db.expire_at(p), None);
        assert_eq!(db.volatile_len(), 0);
        assert_eq!(db.str_at(p), Some(StrRef::Int(3)));
    }
}
