//! A hash: field/value pairs, with Redis's two encodings.
//!
//! * `listpack`: one contiguous buffer `([varint len][bytes])*`,
//!   field and value entries alternating, in insertion order (new fields are
//!   appended, updates replace the value in place, deletions close the gap),
//!   exactly the order Redis's listpack keeps, so HGETALL/HKEYS/HSCAN of a small
//!   hash list fields in the same order as Redis. The buffer is re-sized exactly
//!   on every change (as Redis reallocates its listpack), so it carries no slack.
//! * `hashtable`: the keyspace's own ordered [`Table`], whose entries are one
//!   allocation each (`[varint field len][field][value]`). Its scan cursor is a
//!   hash tag, which keeps SCAN's guarantee while the table grows or shrinks.
//!
//! A hash converts from listpack to hashtable once, when it gets more than
//! `hash-max-listpack-entries` fields or a field or value longer than
//! `hash-max-listpack-value`, and never converts back, as Redis.

use super::table::{Keyed, Table};
use super::varint;

/// Redis's listpack size limit (lpSafeToAdd): a listpack never grows past 1 GiB.
const LISTPACK_MAX_SAFETY_SIZE: usize = 1 << 30;

/// One field/value pair of a `hashtable` hash, in a single allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry(Box<[u8]>);

impl Entry {
    /// Packs a pair.
    pub fn new(field: &[u8], value: &[u8]) -> Entry {
        let mut v = Vec::with_capacity(varint::len(field.len()) + field.len() + value.len());
        varint::push(&mut v, field.len());
        v.extend_from_slice(field);
        v.extend_from_slice(value);
        Entry(v.into_boxed_slice())
    }

    /// The field and the value.
    #[inline]
    pub fn pair(&self) -> (&[u8], &[u8]) {
        let (n, h) = varint::read(&self.0);
        (&self.0[h..h + n], &self.0[h + n..])
    }
}

impl Keyed for Entry {
    #[inline]
    fn key(&self) -> &[u8] {
        self.pair().0
    }
}

/// Where a field sits in a listpack buffer.
#[derive(Clone, Copy, Debug)]
struct LpSpot {
    /// Offset of the field's length prefix.
    start: usize,
    /// Offset of the value's length prefix.
    value: usize,
    /// Offset just past the value.
    end: usize,
}

/// The compact encoding: see the module docs. The pair count lives beside the
/// buffer (in what would be the enum's padding), not in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listpack {
    buf: Box<[u8]>,
    len: u32,
}

/// Iterates a listpack's pairs in order.
pub struct LpIter<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Iterator for LpIter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.buf.len() {
            return None;
        }
        let (fl, n) = varint::read(&self.buf[self.at..]);
        let f0 = self.at + n;
        let f = &self.buf[f0..f0 + fl];
        let (vl, n) = varint::read(&self.buf[f0 + fl..]);
        let v0 = f0 + fl + n;
        let v = &self.buf[v0..v0 + vl];
        self.at = v0 + vl;
        Some((f, v))
    }
}

impl Listpack {
    /// Number of pairs.
    #[inline]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True when there are no pairs.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of the buffer.
    #[inline]
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// The pairs, in order.
    pub fn iter(&self) -> LpIter<'_> {
        LpIter {
            buf: &self.buf,
            at: 0,
        }
    }

    /// The value of `field`.
    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        let s = find_in(&self.buf, field)?;
        let (vl, n) = varint::read(&self.buf[s.value..]);
        Some(&self.buf[s.value + n..s.value + n + vl])
    }

    /// Sets `field` to `value`; true when the field is new (appended at the tail).
    pub fn set(&mut self, field: &[u8], value: &[u8]) -> bool {
        let mut enc = Vec::with_capacity(varint::len(value.len()) + value.len());
        varint::push(&mut enc, value.len());
        enc.extend_from_slice(value);
        // Edit as a Vec (free to convert) and box it again at its exact size: one
        // reallocation per change, as Redis's listpack.
        let mut v = std::mem::take(&mut self.buf).into_vec();
        let inserted = match find_in(&v, field) {
            Some(s) => {
                if s.end - s.value == enc.len() {
                    v[s.value..s.end].copy_from_slice(&enc);
                } else {
                    v.splice(s.value..s.end, enc);
                }
                false
            }
            None => {
                v.reserve_exact(varint::len(field.len()) + field.len() + enc.len());
                varint::push(&mut v, field.len());
                v.extend_from_slice(field);
                v.extend_from_slice(&enc);
                self.len += 1;
                true
            }
        };
        self.buf = v.into_boxed_slice();
        inserted
    }

    /// Removes `field`; true when it was there.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        let Some(s) = find_in(&self.buf, field) else {
            return false;
        };
        self.len -= 1;
        let mut v = std::mem::take(&mut self.buf).into_vec();
        v.drain(s.start..s.end);
        self.buf = v.into_boxed_slice();
        true
    }
}

/// Finds `field` in a listpack buffer (also one being edited, outside its `Listpack`).
fn find_in(v: &[u8], field: &[u8]) -> Option<LpSpot> {
    let mut at = 0;
    while at < v.len() {
        let start = at;
        let (fl, n) = varint::read(&v[at..]);
        let f0 = at + n;
        let value = f0 + fl;
        let (vl, n) = varint::read(&v[value..]);
        let end = value + n + vl;
        if &v[f0..value] == field {
            return Some(LpSpot { start, value, end });
        }
        at = end;
    }
    None
}

/// The `hashtable` encoding: the table and the bytes its entries hold (so that
/// `heap_size` needs no walk over a million entries).
#[derive(Debug, Default)]
pub struct BigHash {
    table: Table<Entry>,
    entry_bytes: usize,
}

impl BigHash {
    /// Inserts or replaces a pair; true when the field is new.
    fn insert(&mut self, e: Entry) -> bool {
        self.entry_bytes += e.0.len();
        match self.table.insert(e) {
            Some(old) => {
                self.entry_bytes -= old.0.len();
                false
            }
            None => true,
        }
    }

    /// Removes a field; true when it was there.
    fn remove(&mut self, field: &[u8]) -> bool {
        match self.table.remove(field) {
            Some(old) => {
                self.entry_bytes -= old.0.len();
                true
            }
            None => false,
        }
    }
}

impl std::ops::Deref for BigHash {
    type Target = Table<Entry>;

    fn deref(&self) -> &Table<Entry> {
        &self.table
    }
}

/// A hash: field/value pairs.
#[derive(Debug)]
pub enum HashValue {
    /// Small hashes: one buffer in insertion order.
    Listpack(Listpack),
    /// Large hashes: a hash table (boxed so that small hashes stay small).
    Table(Box<BigHash>),
}

impl Default for HashValue {
    fn default() -> Self {
        HashValue::Listpack(Listpack::default())
    }
}

impl Clone for HashValue {
    fn clone(&self) -> Self {
        match self {
            HashValue::Listpack(lp) => HashValue::Listpack(lp.clone()),
            HashValue::Table(t) => {
                let mut n = BigHash::default();
                for e in t.iter() {
                    n.insert(e.clone());
                }
                HashValue::Table(Box::new(n))
            }
        }
    }
}

impl PartialEq for HashValue {
    /// Same encoding and the same pairs (a table's layout does not matter).
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (HashValue::Listpack(a), HashValue::Listpack(b)) => a == b,
            (HashValue::Table(a), HashValue::Table(b)) => {
                if a.len() != b.len() {
                    return false;
                }
                let mut same = true;
                a.for_each(|e| {
                    let (f, v) = e.pair();
                    same &= b.get(f).map(|x| x.pair().1) == Some(v);
                });
                same
            }
            _ => false,
        }
    }
}

/// The thresholds that decide the encoding (hash-max-listpack-entries/-value).
#[derive(Clone, Copy, Debug)]
pub struct HashLimits {
    /// hash-max-listpack-entries.
    pub max_entries: usize,
    /// hash-max-listpack-value.
    pub max_value: usize,
}

impl HashLimits {
    /// The hash thresholds of a shard's limits.
    pub fn of(l: &super::Limits) -> HashLimits {
        HashLimits {
            max_entries: l.hash_max_listpack_entries,
            max_value: l.hash_max_listpack_value,
        }
    }
}

impl HashValue {
    /// An empty hash (listpack, as createHashObject).
    pub fn new() -> Self {
        HashValue::default()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            HashValue::Listpack(lp) => lp.len(),
            HashValue::Table(t) => t.len(),
        }
    }

    /// True when empty (Redis deletes empty collections).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The OBJECT ENCODING name.
    pub fn encoding_name(&self) -> &'static str {
        match self {
            HashValue::Listpack(_) => "listpack",
            HashValue::Table(_) => "hashtable",
        }
    }

    /// Approximate heap bytes used.
    pub fn heap_size(&self) -> usize {
        match self {
            HashValue::Listpack(lp) => lp.bytes(),
            HashValue::Table(t) => {
                std::mem::size_of::<BigHash>()
                    + t.slot_capacity() * (4 + std::mem::size_of::<Option<Entry>>())
                    + t.entry_bytes
            }
        }
    }

    /// The value of `field`.
    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match self {
            HashValue::Listpack(lp) => lp.get(field),
            HashValue::Table(t) => t.get(field).map(|e| e.pair().1),
        }
    }

    /// True when `field` exists.
    pub fn contains(&self, field: &[u8]) -> bool {
        self.get(field).is_some()
    }

    /// Converts a listpack to a hashtable (hashTypeConvert); a no-op for a hashtable.
    pub fn convert(&mut self) {
        if let HashValue::Listpack(lp) = self {
            let mut t = BigHash::default();
            for (f, v) in lp.iter() {
                t.insert(Entry::new(f, v));
            }
            *self = HashValue::Table(Box::new(t));
        }
    }

    /// hashTypeTryConversion: converts before a write when any of `args` is too long for a
    /// listpack, or the listpack would pass its size limit.
    pub fn try_conversion(&mut self, args: &[&[u8]], limits: HashLimits) {
        let HashValue::Listpack(lp) = self else {
            return;
        };
        let mut sum = 0usize;
        for a in args {
            if a.len() > limits.max_value {
                self.convert();
                return;
            }
            sum += a.len();
        }
        if lp.bytes() + sum > LISTPACK_MAX_SAFETY_SIZE {
            self.convert();
        }
    }

    /// hashTypeSet: sets `field` to `value`, converting when the pair is too long for a
    /// listpack or the listpack gets too many fields; true when the field is new.
    pub fn set(&mut self, field: &[u8], value: &[u8], limits: HashLimits) -> bool {
        if let HashValue::Listpack(_) = self {
            if field.len() > limits.max_value || value.len() > limits.max_value {
                self.convert();
            }
        }
        match self {
            HashValue::Listpack(lp) => {
                let inserted = lp.set(field, value);
                if lp.len() > limits.max_entries {
                    self.convert();
                }
                inserted
            }
            HashValue::Table(t) => t.insert(Entry::new(field, value)),
        }
    }

    /// Removes `field`; true when it was there.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match self {
            HashValue::Listpack(lp) => lp.remove(field),
            HashValue::Table(t) => t.remove(field),
        }
    }

    /// Calls `f` for every pair, in the encoding's order.
    pub fn for_each(&self, mut f: impl FnMut(&[u8], &[u8])) {
        match self {
            HashValue::Listpack(lp) => lp.iter().for_each(|(k, v)| f(k, v)),
            HashValue::Table(t) => t.for_each(|e| {
                let (k, v) = e.pair();
                f(k, v)
            }),
        }
    }

    /// Every pair, in the encoding's order.
    pub fn pairs(&self) -> Vec<(&[u8], &[u8])> {
        let mut out = Vec::with_capacity(self.len());
        match self {
            HashValue::Listpack(lp) => out.extend(lp.iter()),
            HashValue::Table(t) => out.extend(t.iter().map(Entry::pair)),
        }
        out
    }

    /// HSCAN's walk: a listpack is returned whole with cursor 0 (as Redis); a table visits
    /// about `count` fields from `cursor` and returns the next cursor (0 when done).
    pub fn scan(&self, cursor: u64, count: usize, mut f: impl FnMut(&[u8], &[u8])) -> u64 {
        match self {
            HashValue::Listpack(lp) => {
                lp.iter().for_each(|(k, v)| f(k, v));
                0
            }
            HashValue::Table(t) => {
                // Tags are 32-bit; a cursor past that range is past the end.
                let Ok(c) = u32::try_from(cursor) else {
                    return 0;
                };
                t.scan(c, count, |e| {
                    let (k, v) = e.pair();
                    f(k, v)
                }) as u64
            }
        }
    }

    /// One random pair (None when empty).
    pub fn random_pair(&self, mut rand: impl FnMut() -> u64) -> Option<(&[u8], &[u8])> {
        match self {
            HashValue::Listpack(lp) => {
                let n = lp.len();
                if n == 0 {
                    return None;
                }
                lp.iter().nth((rand() % n as u64) as usize)
            }
            HashValue::Table(t) => t.random_pos(rand).map(|p| t.at(p).pair()),
        }
    }

    /// `count` distinct random pairs, `count` < len (HRANDFIELD with a positive count).
    ///
    /// A listpack is sampled in one ordered pass (lpRandomPairsUnique: results in
    /// listpack order); a table drops random pairs from a copy when most are wanted
    /// (Redis's CASE 3) or draws random pairs until enough are distinct (CASE 4).
    pub fn random_distinct(
        &self,
        count: usize,
        mut rand: impl FnMut() -> u64,
    ) -> Vec<(&[u8], &[u8])> {
        let size = self.len();
        let count = count.min(size);
        match self {
            HashValue::Listpack(lp) => {
                let mut out = Vec::with_capacity(count);
                let mut remaining = size as u64;
                let mut need = count as u64;
                for pair in lp.iter() {
                    if need == 0 {
                        break;
                    }
                    // Selection sampling: keep with probability need/remaining.
                    if rand() % remaining < need {
                        out.push(pair);
                        need -= 1;
                    }
                    remaining -= 1;
                }
                out
            }
            HashValue::Table(t) => {
                if count.saturating_mul(3) > size {
                    let mut all = self.pairs();
                    while all.len() > count {
                        let i = (rand() % all.len() as u64) as usize;
                        all.swap_remove(i);
                    }
                    all
                } else {
                    let mut seen = std::collections::HashSet::with_capacity(count);
                    let mut out = Vec::with_capacity(count);
                    while out.len() < count {
                        let Some(p) = t.random_pos(&mut rand) else {
                            break;
                        };
                        let pair = t.at(p).pair();
                        if seen.insert(pair.0) {
                            out.push(pair);
                        }
                    }
                    out
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEF: HashLimits = HashLimits {
        max_entries: 128,
        max_value: 64,
    };

    fn rng() -> impl FnMut() -> u64 {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    fn fields(h: &HashValue) -> Vec<Vec<u8>> {
        h.pairs().iter().map(|(f, _)| f.to_vec()).collect()
    }

    #[test]
    fn listpack_keeps_insertion_order_and_updates_in_place() {
        let mut h = HashValue::new();
        assert!(h.is_empty());
        assert!(h.set(b"a", b"1", DEF));
        assert!(h.set(b"b", b"2", DEF));
        assert!(h.set(b"c", b"3", DEF));
        assert!(!h.set(b"a", b"longer value", DEF));
        assert_eq!(h.get(b"a"), Some(&b"longer value"[..]));
        assert_eq!(
            fields(&h),
            vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
        );
        assert!(h.remove(b"b"));
        assert!(!h.remove(b"b"));
        assert!(h.set(b"b", b"", DEF));
        assert_eq!(
            fields(&h),
            vec![b"a".to_vec(), b"c".to_vec(), b"b".to_vec()]
        );
        assert_eq!(h.get(b"b"), Some(&b""[..]));
        assert_eq!(h.len(), 3);
        assert_eq!(h.encoding_name(), "listpack");
        for f in [&b"a"[..], b"b", b"c"] {
            assert!(h.remove(f));
        }
        assert!(h.is_empty());
        assert_eq!(h.heap_size(), 0);
        // The count sits in the enum's padding: a hash costs its slab slot three words.
        assert!(std::mem::size_of::<HashValue>() <= 24);
    }

    #[test]
    fn converts_on_count_and_length_and_never_back() {
        let lim = HashLimits {
            max_entries: 4,
            max_value: 8,
        };
        let mut h = HashValue::new();
        for i in 0..4 {
            h.set(format!("f{i}").as_bytes(), b"v", lim);
        }
        assert_eq!(h.encoding_name(), "listpack");
        h.set(b"f4", b"v", lim);
        assert_eq!(h.encoding_name(), "hashtable");
        for i in 0..5 {
            assert!(h.remove(format!("f{i}").as_bytes()));
        }
        h.set(b"x", b"y", lim);
        assert_eq!(h.encoding_name(), "hashtable");

        let mut h = HashValue::new();
        h.set(b"x", b"123456789", lim);
        assert_eq!(h.encoding_name(), "hashtable");
        assert_eq!(h.get(b"x"), Some(&b"123456789"[..]));

        let mut h = HashValue::new();
        h.set(b"x", b"1", lim);
        h.try_conversion(&[b"x", b"12345678"], lim);
        assert_eq!(h.encoding_name(), "listpack");
        h.try_conversion(&[b"x", b"123456789"], lim);
        assert_eq!(h.encoding_name(), "hashtable");
    }

    #[test]
    fn table_matches_a_model() {
        let mut h = HashValue::new();
        h.convert();
        let mut model = std::collections::HashMap::new();
        let mut r = rng();
        for _ in 0..20_000 {
            let f = format!("f{}", r() % 3000).into_bytes();
            match r() % 3 {
                0 => {
                    assert_eq!(h.remove(&f), model.remove(&f).is_some());
                }
                _ => {
                    let v = format!("v{}", r() % 100000).into_bytes();
                    assert_eq!(h.set(&f, &v, DEF), model.insert(f.clone(), v).is_none());
                }
            }
        }
        assert_eq!(h.len(), model.len());
        for (f, v) in &model {
            assert_eq!(h.get(f), Some(&v[..]));
        }
        let c = h.clone();
        assert_eq!(c, h);
        let bytes: usize = model.iter().map(|(f, v)| Entry::new(f, v).0.len()).sum();
        let HashValue::Table(t) = &h else {
            panic!("a table")
        };
        assert_eq!(t.entry_bytes, bytes);
    }

    #[test]
    fn scan_returns_everything_while_growing() {
        let mut h = HashValue::new();
        h.convert();
        for i in 0..1000 {
            h.set(format!("orig{i}").as_bytes(), b"v", DEF);
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0u64;
        let mut round = 0;
        loop {
            cursor = h.scan(cursor, 10, |f, _| {
                seen.insert(f.to_vec());
            });
            for j in 0..50 {
                h.set(format!("new{round}:{j}").as_bytes(), b"v", DEF);
            }
            round += 1;
            if cursor == 0 {
                break;
            }
        }
        for i in 0..1000 {
            assert!(seen.contains(format!("orig{i}").as_bytes()), "orig{i}");
        }
    }

    #[test]
    fn random_picks() {
        let mut h = HashValue::new();
        for i in 0..20 {
            h.set(format!("f{i}").as_bytes(), b"v", DEF);
        }
        let mut r = rng();
        for count in [1, 5, 19] {
            let picks = h.random_distinct(count, &mut r);
            assert_eq!(picks.len(), count);
            let set: std::collections::HashSet<_> = picks.iter().map(|p| p.0).collect();
            assert_eq!(set.len(), count);
        }
        assert!(h.random_pair(&mut r).is_some());
        h.convert();
        for count in [1, 5, 19] {
            let picks = h.random_distinct(count, &mut r);
            let set: std::collections::HashSet<_> = picks.iter().map(|p| p.0).collect();
            assert_eq!(set.len(), count);
        }
        assert!(HashValue::new().random_pair(&mut r).is_none());
    }

    #[test]
    fn long_fields_use_multibyte_lengths() {
        let big = vec![b'x'; 70_000];
        let lim = HashLimits {
            max_entries: 10,
            max_value: 100_000,
        };
        let mut h = HashValue::new();
        h.set(&big, &big, lim);
        h.set(b"a", &big[..300], lim);
        assert_eq!(h.get(&big), Some(&big[..]));
        assert_eq!(h.get(b"a"), Some(&big[..300]));
        assert_eq!(h.encoding_name(), "listpack");
        let e = Entry::new(&big[..200], b"v");
        assert_eq!(e.pair(), (&big[..200], &b"v"[..]));
    }
}
