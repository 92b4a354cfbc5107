//! A set of byte strings value, with Redis 7.0's two encodings.
//!
//! * `intset`: a sorted contiguous array of integers, 16, 32 or 64 bits wide
//!   (the width grows to fit the widest member and never shrinks, as Redis's
//!   intset). Used while every member is a canonical integer and the set has
//!   at most `set-max-intset-entries` members. Iteration is in numeric order,
//!   so SMEMBERS of a small integer set replies exactly as Redis does.
//! * `hashtable`: the keyspace's ordered hash table ([`Table`]) holding
//!   16-byte members: up to 14 bytes inline (no allocation at all), longer
//!   ones boxed. Because the table is ordered by hash tag, an SSCAN cursor is
//!   "the next tag", which returns every member present for the whole scan at
//!   least once, also while the set grows or shrinks.
//!
//! Conversion is one way (intset → hashtable), as in Redis: a set never goes
//! back to an intset except when a command builds a new set (SPOP's
//! "keep the rest" strategy, the STORE commands).

use super::table::{self, Keyed, Table};
use crate::util::num;

/// Longest member stored inline in a hashtable slot.
const INLINE: usize = 14;

/// A hashtable member: inline when short, boxed otherwise; 16 bytes either way.
#[derive(Clone, PartialEq, Eq)]
enum Member {
    /// Up to `INLINE` bytes, with their length.
    Inline(u8, [u8; INLINE]),
    /// A longer member. The double box keeps the slot a thin pointer (16 bytes in all).
    Heap(Box<Box<[u8]>>),
}

impl Member {
    fn new(b: &[u8]) -> Member {
        if b.len() <= INLINE {
            let mut data = [0u8; INLINE];
            data[..b.len()].copy_from_slice(b);
            Member::Inline(b.len() as u8, data)
        } else {
            Member::Heap(Box::new(b.into()))
        }
    }

    fn into_vec(self) -> Vec<u8> {
        match self {
            Member::Inline(n, d) => d[..n as usize].to_vec(),
            Member::Heap(b) => (*b).into_vec(),
        }
    }

    /// Heap bytes outside the slot.
    fn heap_size(&self) -> usize {
        match self {
            Member::Inline(..) => 0,
            Member::Heap(b) => 16 + b.len(),
        }
    }
}

impl Keyed for Member {
    #[inline]
    fn key(&self) -> &[u8] {
        match self {
            Member::Inline(n, d) => &d[..*n as usize],
            Member::Heap(b) => b,
        }
    }
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.key()))
    }
}

/// A sorted array of integers with Redis's width upgrade (16 → 32 → 64 bits).
#[derive(Clone, Debug, PartialEq, Eq)]
enum IntSet {
    W16(Vec<i16>),
    W32(Vec<i32>),
    W64(Vec<i64>),
}

/// Bytes per integer an intset needs for `v` (Redis's _intsetValueEncoding).
fn width_of(v: i64) -> usize {
    if i16::try_from(v).is_ok() {
        2
    } else if i32::try_from(v).is_ok() {
        4
    } else {
        8
    }
}

/// Inserts `v` into sorted `a` if absent; the array grows by exactly one slot, as intsetResize.
fn sorted_insert<T: Ord + Copy>(a: &mut Vec<T>, v: T) -> bool {
    match a.binary_search(&v) {
        Ok(_) => false,
        Err(i) => {
            a.reserve_exact(1);
            a.insert(i, v);
            true
        }
    }
}

/// Removes `v` from sorted `a` if present, giving the slot back.
fn sorted_remove<T: Ord + Copy>(a: &mut Vec<T>, v: T) -> bool {
    match a.binary_search(&v) {
        Ok(i) => {
            a.remove(i);
            if a.capacity() > a.len() + a.len() / 4 + 4 {
                a.shrink_to_fit();
            }
            true
        }
        Err(_) => false,
    }
}

impl IntSet {
    fn new() -> IntSet {
        IntSet::W16(Vec::new())
    }

    fn len(&self) -> usize {
        match self {
            IntSet::W16(a) => a.len(),
            IntSet::W32(a) => a.len(),
            IntSet::W64(a) => a.len(),
        }
    }

    /// Bytes per element of the current encoding.
    fn width(&self) -> usize {
        match self {
            IntSet::W16(_) => 2,
            IntSet::W32(_) => 4,
            IntSet::W64(_) => 8,
        }
    }

    fn get(&self, i: usize) -> i64 {
        match self {
            IntSet::W16(a) => a[i] as i64,
            IntSet::W32(a) => a[i] as i64,
            IntSet::W64(a) => a[i],
        }
    }

    fn contains(&self, v: i64) -> bool {
        // A value wider than the encoding cannot be present (intsetFind's first test).
        if width_of(v) > self.width() {
            return false;
        }
        match self {
            IntSet::W16(a) => a.binary_search(&(v as i16)).is_ok(),
            IntSet::W32(a) => a.binary_search(&(v as i32)).is_ok(),
            IntSet::W64(a) => a.binary_search(&v).is_ok(),
        }
    }

    /// Widens the array to `w` bytes per element (intsetUpgradeAndAdd's first half).
    fn upgrade(&mut self, w: usize) {
        let vals: Vec<i64> = (0..self.len()).map(|i| self.get(i)).collect();
        *self = match w {
            4 => IntSet::W32(vals.into_iter().map(|v| v as i32).collect()),
            _ => IntSet::W64(vals),
        };
    }

    fn insert(&mut self, v: i64) -> bool {
        if width_of(v) > self.width() {
            self.upgrade(width_of(v));
        }
        match self {
            IntSet::W16(a) => sorted_insert(a, v as i16),
            IntSet::W32(a) => sorted_insert(a, v as i32),
            IntSet::W64(a) => sorted_insert(a, v),
        }
    }

    fn remove(&mut self, v: i64) -> bool {
        if width_of(v) > self.width() {
            return false;
        }
        match self {
            IntSet::W16(a) => sorted_remove(a, v as i16),
            IntSet::W32(a) => sorted_remove(a, v as i32),
            IntSet::W64(a) => sorted_remove(a, v),
        }
    }

    fn heap_size(&self) -> usize {
        match self {
            IntSet::W16(a) => a.capacity() * 2,
            IntSet::W32(a) => a.capacity() * 4,
            IntSet::W64(a) => a.capacity() * 8,
        }
    }
}

/// One member as a command sees it: an intset's integer or a hashtable's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem<'a> {
    /// A member of an intset.
    Int(i64),
    /// A member of a hashtable.
    Str(&'a [u8]),
}

impl Elem<'_> {
    /// Calls `f` with the member's bytes (an integer is formatted on the stack).
    pub fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            Elem::Int(i) => f(num::format_i64(*i, &mut [0; 24])),
            Elem::Str(b) => f(b),
        }
    }

    /// The member's bytes, owned.
    pub fn to_vec(&self) -> Vec<u8> {
        self.with_bytes(|b| b.to_vec())
    }
}

#[derive(Debug)]
enum Repr {
    Ints(IntSet),
    Hash(Table<Member>),
}

/// A set of byte strings; see the module docs.
#[derive(Debug)]
pub struct SetValue {
    repr: Repr,
}

impl Default for SetValue {
    fn default() -> Self {
        SetValue::new_intset()
    }
}

impl Clone for SetValue {
    fn clone(&self) -> Self {
        match &self.repr {
            Repr::Ints(a) => SetValue {
                repr: Repr::Ints(a.clone()),
            },
            Repr::Hash(t) => {
                let mut n = Table::new();
                t.for_each(|m| {
                    n.insert_new_hashed(table::hash(m.key()), m.clone());
                });
                SetValue {
                    repr: Repr::Hash(n),
                }
            }
        }
    }
}

impl PartialEq for SetValue {
    fn eq(&self, other: &Self) -> bool {
        if self.encoding_name() != other.encoding_name() || self.len() != other.len() {
            return false;
        }
        let mut same = true;
        self.for_each(|e| same = same && other.contains_elem(e));
        same
    }
}

impl SetValue {
    /// An empty intset (what Redis's createIntsetObject makes).
    pub fn new_intset() -> SetValue {
        SetValue {
            repr: Repr::Ints(IntSet::new()),
        }
    }

    /// An empty hashtable set.
    pub fn new_hashtable() -> SetValue {
        SetValue {
            repr: Repr::Hash(Table::new()),
        }
    }

    /// An empty set that can hold `first` (Redis's setTypeCreate): intset for an integer.
    pub fn new_for(first: &[u8]) -> SetValue {
        if num::parse_i64(first).is_some() {
            SetValue::new_intset()
        } else {
            SetValue::new_hashtable()
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Ints(a) => a.len(),
            Repr::Hash(t) => t.len(),
        }
    }

    /// True when empty (Redis deletes empty collections).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The OBJECT ENCODING name.
    pub fn encoding_name(&self) -> &'static str {
        match &self.repr {
            Repr::Ints(_) => "intset",
            Repr::Hash(_) => "hashtable",
        }
    }

    /// True for the intset encoding.
    pub fn is_intset(&self) -> bool {
        matches!(self.repr, Repr::Ints(_))
    }

    /// Bytes per integer of an intset (2, 4 or 8), None for a hashtable.
    pub fn intset_width(&self) -> Option<usize> {
        match &self.repr {
            Repr::Ints(a) => Some(a.width()),
            Repr::Hash(_) => None,
        }
    }

    /// Approximate heap bytes used (walks a hashtable for its boxed members: not for hot paths).
    pub fn heap_size(&self) -> usize {
        match &self.repr {
            Repr::Ints(a) => a.heap_size(),
            Repr::Hash(t) => {
                let mut extra = 0;
                t.for_each(|m| extra += m.heap_size());
                t.slot_capacity() * (4 + std::mem::size_of::<Option<Member>>()) + extra
            }
        }
    }

    /// Converts an intset to a hashtable (setTypeConvert).
    fn convert(&mut self) {
        if let Repr::Ints(a) = &self.repr {
            let mut t = Table::new();
            for i in 0..a.len() {
                let v = a.get(i);
                let m = Member::new(num::format_i64(v, &mut [0; 24]));
                t.insert_new_hashed(table::hash(m.key()), m);
            }
            self.repr = Repr::Hash(t);
        }
    }

    /// Adds `m`; true when it was new (setTypeAdd). `max_intset` is set-max-intset-entries.
    pub fn add(&mut self, m: &[u8], max_intset: usize) -> bool {
        if let Repr::Ints(a) = &mut self.repr {
            match num::parse_i64(m) {
                Some(v) => {
                    if !a.insert(v) {
                        return false;
                    }
                    // Redis caps the limit at 1G entries (intset internals).
                    if a.len() > max_intset.min(1 << 30) {
                        self.convert();
                    }
                    return true;
                }
                None => self.convert(),
            }
        }
        match &mut self.repr {
            Repr::Hash(t) => {
                let h = table::hash(m);
                if t.find_hashed(h, m).is_some() {
                    return false;
                }
                t.insert_new_hashed(h, Member::new(m));
                true
            }
            Repr::Ints(_) => unreachable!("converted above"),
        }
    }

    /// Removes `m`; true when it was a member (setTypeRemove).
    pub fn remove(&mut self, m: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Ints(a) => num::parse_i64(m).is_some_and(|v| a.remove(v)),
            Repr::Hash(t) => t.remove(m).is_some(),
        }
    }

    /// True when `m` is a member (setTypeIsMember).
    pub fn contains(&self, m: &[u8]) -> bool {
        match &self.repr {
            Repr::Ints(a) => num::parse_i64(m).is_some_and(|v| a.contains(v)),
            Repr::Hash(t) => t.find(m).is_some(),
        }
    }

    /// True when the member `e` (from another set) is a member of this one.
    pub fn contains_elem(&self, e: Elem<'_>) -> bool {
        match (&self.repr, e) {
            (Repr::Ints(a), Elem::Int(v)) => a.contains(v),
            _ => e.with_bytes(|b| self.contains(b)),
        }
    }

    /// Calls `f` for every member: an intset in numeric order, a hashtable in table order.
    pub fn for_each(&self, mut f: impl FnMut(Elem<'_>)) {
        match &self.repr {
            Repr::Ints(a) => (0..a.len()).for_each(|i| f(Elem::Int(a.get(i)))),
            Repr::Hash(t) => t.for_each(|m| f(Elem::Str(m.key()))),
        }
    }

    /// Calls `f` for members in `for_each` order until it returns false.
    pub fn for_each_while(&self, mut f: impl FnMut(Elem<'_>) -> bool) {
        match &self.repr {
            Repr::Ints(a) => {
                for i in 0..a.len() {
                    if !f(Elem::Int(a.get(i))) {
                        return;
                    }
                }
            }
            Repr::Hash(t) => {
                // Table order is tag order, which scanning in chunks follows too.
                let mut go = true;
                let mut cursor = 0;
                loop {
                    cursor = t.scan(cursor, 64, |m| {
                        if go {
                            go = f(Elem::Str(m.key()));
                        }
                    });
                    if cursor == 0 || !go {
                        return;
                    }
                }
            }
        }
    }

    /// Every member, owned, in iteration order.
    pub fn members(&self) -> Vec<Vec<u8>> {
        let mut v = Vec::with_capacity(self.len());
        self.for_each(|e| v.push(e.to_vec()));
        v
    }

    /// A random member of a non-empty set (None when empty).
    pub fn random(&self, mut rand: impl FnMut() -> u64) -> Option<Elem<'_>> {
        match &self.repr {
            Repr::Ints(a) if a.len() > 0 => {
                Some(Elem::Int(a.get((rand() % a.len() as u64) as usize)))
            }
            Repr::Ints(_) => None,
            Repr::Hash(t) => t.random_pos(rand).map(|p| Elem::Str(t.at(p).key())),
        }
    }

    /// Removes and returns a random member (None when empty).
    pub fn pop_random(&mut self, mut rand: impl FnMut() -> u64) -> Option<Vec<u8>> {
        match &mut self.repr {
            Repr::Ints(a) => {
                if a.len() == 0 {
                    return None;
                }
                let v = a.get((rand() % a.len() as u64) as usize);
                a.remove(v);
                Some(num::format_i64(v, &mut [0; 24]).to_vec())
            }
            Repr::Hash(t) => {
                let p = t.random_pos(rand)?;
                Some(t.remove_at(p).into_vec())
            }
        }
    }

    /// One SSCAN step over a hashtable from `cursor` (a hash tag), visiting about
    /// `count` members; returns the next cursor, 0 when done. An intset is
    /// visited whole (as Redis does) and returns 0.
    pub fn scan(&self, cursor: u32, count: usize, mut f: impl FnMut(Elem<'_>)) -> u32 {
        match &self.repr {
            Repr::Ints(_) => {
                self.for_each(f);
                0
            }
            Repr::Hash(t) => t.scan(cursor, count, |m| f(Elem::Str(m.key()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ints(s: &SetValue) -> Vec<i64> {
        let mut v = Vec::new();
        s.for_each(|e| match e {
            Elem::Int(i) => v.push(i),
            Elem::Str(_) => panic!("not an intset"),
        });
        v
    }

    #[test]
    fn members_are_16_bytes() {
        assert_eq!(std::mem::size_of::<Member>(), 16);
        assert_eq!(std::mem::size_of::<Option<Member>>(), 16);
    }

    #[test]
    fn intset_upgrades_width_and_stays_sorted() {
        let mut s = SetValue::new_intset();
        for v in ["5", "-3", "100", "0"] {
            assert!(s.add(v.as_bytes(), 512));
        }
        assert!(!s.add(b"5", 512));
        assert_eq!(s.intset_width(), Some(2));
        assert!(s.add(b"70000", 512));
        assert_eq!(s.intset_width(), Some(4));
        assert!(s.add(b"-9223372036854775808", 512));
        assert_eq!(s.intset_width(), Some(8));
        assert_eq!(ints(&s), [i64::MIN, -3, 0, 5, 100, 70000]);
        // Removing the wide values does not narrow the encoding (as Redis).
        assert!(s.remove(b"-9223372036854775808"));
        assert!(s.remove(b"70000"));
        assert_eq!(s.intset_width(), Some(8));
        assert_eq!(ints(&s), [-3, 0, 5, 100]);
        assert_eq!(s.encoding_name(), "intset");
    }

    #[test]
    fn intset_search() {
        let mut s = SetValue::new_intset();
        for v in (0..100).map(|i| i * 3) {
            s.add(v.to_string().as_bytes(), 512);
        }
        for v in 0..300 {
            assert_eq!(s.contains(v.to_string().as_bytes()), v % 3 == 0, "{v}");
        }
        // Values wider than the encoding, and non-canonical forms, are never members.
        assert!(!s.contains(b"100000"));
        assert!(!s.contains(b"03"));
        assert!(!s.contains(b"+3"));
        assert!(!s.contains(b"x"));
        assert!(s.contains_elem(Elem::Int(297)));
        assert!(!s.contains_elem(Elem::Int(1 << 40)));
    }

    #[test]
    fn converts_one_way() {
        let mut s = SetValue::new_intset();
        for i in 0..3 {
            s.add(i.to_string().as_bytes(), 3);
        }
        assert_eq!(s.encoding_name(), "intset");
        s.add(b"3", 3);
        assert_eq!(s.encoding_name(), "hashtable");
        assert!(s.contains(b"3") && s.contains(b"0"));
        s.remove(b"3");
        assert_eq!(s.encoding_name(), "hashtable");
        let mut t = SetValue::new_intset();
        t.add(b"1", 512);
        t.add(b"a long member, longer than fourteen bytes", 512);
        assert_eq!(t.encoding_name(), "hashtable");
        assert!(t.contains(b"1"));
        assert!(t.contains(b"a long member, longer than fourteen bytes"));
        assert_eq!(t.clone(), t);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn hashtable_scan_and_pop() {
        let mut s = SetValue::new_hashtable();
        for i in 0..1000 {
            s.add(format!("m:{i}").as_bytes(), 512);
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        loop {
            cursor = s.scan(cursor, 10, |e| {
                seen.insert(e.to_vec());
            });
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(seen.len(), 1000);
        let mut state = 7u64;
        let mut rand = || crate::server::shard::next_rand(&mut state);
        let mut popped = std::collections::HashSet::new();
        while let Some(m) = s.pop_random(&mut rand) {
            assert!(popped.insert(m));
        }
        assert_eq!(popped, seen);
        assert!(s.is_empty());
    }
}
