//! The keyspace's hash table: open addressing kept sorted by hash, split into parts.
//!
//! Why this shape:
//! * **Sorted by hash.** Each entry carries a 32-bit tag (the top bits of its
//!   hash). Slots hold entries in tag order with linear probing (Robin Hood
//!   insertion by tag, backward-shift deletion). Because the order depends on
//!   the tags only, never on the capacity, a SCAN cursor is simply "the next
//!   tag to visit": every entry present for a whole scan is returned, also
//!   while the table grows or shrinks (Redis needs reverse-binary cursors for
//!   the same guarantee).
//! * **Any capacity.** The home slot is `tag * cap >> bits` (a monotone
//!   "fastrange" map), so capacities need not be powers of two and growth can
//!   be 1.5x, which keeps the average load near 0.7 instead of 0.55.
//! * **Parts.** The tag space is split by its top bits into parts of at most
//!   `PART_MAX_CAP` slots (extendible hashing). A part that is full splits in
//!   two instead of rehashing the whole table, so no single resize moves more
//!   than ~32 K entries: no multi-millisecond stall on a big keyspace.
//! * **Parallel arrays.** Probing touches only the dense `tags` array; the
//!   entry itself is read once, when the tag matches.

use std::hash::BuildHasher;
use std::sync::OnceLock;

/// Entries stored in a [`Table`] expose the key they are stored under.
pub trait Keyed {
    /// The entry's key.
    fn key(&self) -> &[u8];

    /// Starts loading the entry's memory into the cache (a hint; entries
    /// stored inline in the slots have nothing to prefetch).
    #[inline]
    fn prefetch(&self) {}
}

impl Keyed for Box<[u8]> {
    fn key(&self) -> &[u8] {
        self
    }
}

/// Starts loading the cache line holding `*p` without waiting for it (a hint:
/// no effect on what the program computes).
#[inline(always)]
pub fn prefetch_line<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: PREFETCHT0 is only a hint: it never faults and reads or
        // writes nothing the program can observe, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p as *const i8) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Maximum load (per cent of the home range) before a part grows or splits.
const MAX_LOAD_PCT: usize = 85;
/// Load a part is rebuilt at when it grows or splits.
const TARGET_LOAD_PCT: usize = 60;
/// A part shrinks when its load falls below this.
const MIN_LOAD_PCT: usize = 15;
/// Largest home range of one part; full parts split instead of growing.
const PART_MAX_CAP: usize = 1 << 15;
/// Smallest non-zero capacity.
const MIN_CAP: usize = 4;
/// How many slots ahead `scan_mut` prefetches entries.
const PREFETCH_AHEAD: usize = 8;

static HASHER: OnceLock<foldhash::quality::RandomState> = OnceLock::new();

/// The process-wide keyed hash of `key` (seeded randomly at start, as Redis's siphash seed).
#[inline]
pub fn hash(key: &[u8]) -> u64 {
    HASHER
        .get_or_init(foldhash::quality::RandomState::default)
        .hash_one(key)
}

/// The 32-bit ordering tag of a hash: its top bits, never 0 (0 marks an empty slot).
#[inline]
pub fn tag_of(hash: u64) -> u32 {
    ((hash >> 32) as u32).max(1)
}

/// Where an entry sits; valid until the next insert or remove.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pos {
    part: u32,
    idx: u32,
}

#[derive(Debug)]
struct Part<E> {
    /// Local depth: the part holds the tags whose top `depth` bits equal `lo`'s.
    depth: u32,
    /// First tag of the part's range.
    lo: u32,
    /// Size of the home range; `tags.len()` may exceed it by an overflow tail.
    cap: usize,
    tags: Vec<u32>,
    slots: Vec<Option<E>>,
    len: usize,
}

impl<E> Part<E> {
    fn empty(depth: u32, lo: u32) -> Self {
        Part {
            depth,
            lo,
            cap: 0,
            tags: Vec::new(),
            slots: Vec::new(),
            len: 0,
        }
    }

    /// Home slot of `tag`; monotone in the tag, so sorted tags give sorted homes.
    #[inline]
    fn home(&self, tag: u32) -> usize {
        let off = (tag - self.lo) as u64;
        ((off * self.cap as u64) >> (32 - self.depth)) as usize
    }

    /// One past the last tag of the range, or None at the top of the tag space.
    fn range_end(&self) -> Option<u32> {
        let end = self.lo as u64 + (1u64 << (32 - self.depth));
        (end <= u32::MAX as u64).then_some(end as u32)
    }

    /// First slot at or after home(tag) holding an entry with tag >= `tag`, or an empty slot.
    #[inline]
    fn lower_bound(&self, tag: u32) -> usize {
        let mut i = self.home(tag);
        while i < self.tags.len() {
            let t = self.tags[i];
            if t == 0 || t >= tag {
                break;
            }
            i += 1;
        }
        i
    }

    /// Appends an empty slot to the overflow tail. The tail is short, so it
    /// grows by a few slots at a time: a doubling `push` would double the
    /// memory of a whole part for one overflowing entry.
    #[inline]
    fn push_tail(&mut self) {
        if self.tags.len() == self.tags.capacity() {
            self.tags.reserve_exact(4);
        }
        if self.slots.len() == self.slots.capacity() {
            self.slots.reserve_exact(4);
        }
        self.tags.push(0);
        self.slots.push(None);
    }

    /// Rebuilds the part with home range `cap` from its entries, in order.
    fn rebuild(&mut self, cap: usize) {
        let tags = std::mem::take(&mut self.tags);
        let slots = std::mem::take(&mut self.slots);
        self.cap = cap;
        if self.len == 0 || cap == 0 {
            self.cap = if self.len == 0 { 0 } else { cap };
            return;
        }
        self.tags = vec![0; cap];
        self.slots = Vec::with_capacity(cap);
        self.slots.resize_with(cap, || None);
        let mut next = 0usize;
        for (t, e) in tags.into_iter().zip(slots) {
            if t == 0 {
                continue;
            }
            let at = self.home(t).max(next);
            if at >= self.tags.len() {
                self.push_tail();
            }
            self.tags[at] = t;
            self.slots[at] = e;
            next = at + 1;
        }
    }

    fn take_all(&mut self) -> Vec<(u32, E)> {
        let tags = std::mem::take(&mut self.tags);
        let slots = std::mem::take(&mut self.slots);
        self.len = 0;
        self.cap = 0;
        tags.into_iter()
            .zip(slots)
            .filter_map(|(t, e)| e.map(|e| (t, e)))
            .collect()
    }

    fn fill(&mut self, entries: Vec<(u32, E)>) {
        let cap = cap_for(entries.len());
        self.len = entries.len();
        self.cap = cap;
        self.tags = vec![0; cap];
        self.slots = Vec::with_capacity(cap);
        self.slots.resize_with(cap, || None);
        let mut next = 0usize;
        for (t, e) in entries {
            let at = self.home(t).max(next);
            if at >= self.tags.len() {
                self.push_tail();
            }
            self.tags[at] = t;
            self.slots[at] = Some(e);
            next = at + 1;
        }
    }
}

/// Home range for `len` entries at the target load.
fn cap_for(len: usize) -> usize {
    if len == 0 {
        0
    } else {
        (len * 100 / TARGET_LOAD_PCT).clamp(MIN_CAP, PART_MAX_CAP)
    }
}

/// The ordered hash table; see the module docs.
#[derive(Debug)]
pub struct Table<E> {
    /// Directory: 2^depth entries, each the index of the part owning that tag prefix.
    dir: Vec<u32>,
    depth: u32,
    parts: Vec<Part<E>>,
    len: usize,
}

impl<E> Default for Table<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> Table<E> {
    /// An empty table (allocates nothing until the first insert).
    pub fn new() -> Self {
        Table {
            dir: vec![0],
            depth: 0,
            parts: vec![Part::empty(0, 0)],
            len: 0,
        }
    }

    /// Number of entries.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the table has no entries.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Slots allocated over all parts (for memory introspection).
    pub fn slot_capacity(&self) -> usize {
        self.parts.iter().map(|p| p.tags.len()).sum()
    }

    #[inline]
    fn part_index(&self, tag: u32) -> usize {
        let d = ((tag as u64) >> (32 - self.depth)) as usize;
        self.dir[d] as usize
    }

    /// The entry at `pos`.
    #[inline]
    pub fn at(&self, pos: Pos) -> &E {
        self.parts[pos.part as usize].slots[pos.idx as usize]
            .as_ref()
            .expect("Pos points at an entry")
    }

    /// The entry at `pos`, mutably.
    #[inline]
    pub fn at_mut(&mut self, pos: Pos) -> &mut E {
        self.parts[pos.part as usize].slots[pos.idx as usize]
            .as_mut()
            .expect("Pos points at an entry")
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        *self = Table::new();
    }

    /// Removes and returns the entry at `pos` (backward-shift deletion).
    pub fn remove_at(&mut self, pos: Pos) -> E {
        let part = &mut self.parts[pos.part as usize];
        let mut i = pos.idx as usize;
        let removed = part.slots[i].take().expect("Pos points at an entry");
        part.tags[i] = 0;
        // Pull displaced followers back one slot; stop at an empty slot or an
        // entry already at its home.
        while i + 1 < part.tags.len() {
            let t = part.tags[i + 1];
            if t == 0 || part.home(t) > i {
                break;
            }
            part.tags[i] = t;
            part.tags[i + 1] = 0;
            part.slots[i] = part.slots[i + 1].take();
            i += 1;
        }
        part.len -= 1;
        self.len -= 1;
        if part.len * 100 < part.cap * MIN_LOAD_PCT && part.cap > MIN_CAP {
            let cap = cap_for(part.len);
            part.rebuild(cap);
        }
        removed
    }

    /// Calls `f` for every entry, in tag order.
    pub fn for_each(&self, mut f: impl FnMut(&E)) {
        for part in &self.parts {
            for e in part.slots.iter().flatten() {
                f(e);
            }
        }
    }

    /// Every entry, in tag order (what `for_each` visits, borrowed from the table).
    pub fn iter(&self) -> impl Iterator<Item = &E> + '_ {
        self.parts.iter().flat_map(|p| p.slots.iter().flatten())
    }

    /// Removes and returns every entry (used to move a table's contents elsewhere).
    pub fn drain_all(&mut self) -> Vec<E> {
        let mut out = Vec::with_capacity(self.len);
        for part in &mut self.parts {
            out.extend(part.take_all().into_iter().map(|(_, e)| e));
        }
        *self = Table::new();
        out
    }

    /// A random entry's position, or None when empty. `rand` supplies random numbers.
    pub fn random_pos(&self, mut rand: impl FnMut() -> u64) -> Option<Pos> {
        if self.len == 0 {
            return None;
        }
        // Pick a part by directory slot (proportional to its share of the
        // hash space, i.e. roughly to its share of keys), then a random
        // occupied slot in it. Fall back to a scan when unlucky.
        for _ in 0..64 {
            let pi = self.dir[(rand() % self.dir.len() as u64) as usize] as usize;
            let part = &self.parts[pi];
            if part.len == 0 {
                continue;
            }
            for _ in 0..16 {
                let i = (rand() % part.tags.len() as u64) as usize;
                if part.tags[i] != 0 {
                    return Some(Pos {
                        part: pi as u32,
                        idx: i as u32,
                    });
                }
            }
        }
        let start = (rand() % self.parts.len() as u64) as usize;
        let n = self.parts.len();
        for k in 0..n {
            let pi = (start + k) % n;
            if let Some(i) = self.parts[pi].tags.iter().position(|&t| t != 0) {
                return Some(Pos {
                    part: pi as u32,
                    idx: i as u32,
                });
            }
        }
        None
    }

    /// Finds an entry with tag `tag` for which `pred` holds. Entries that share
    /// a tag sit next to each other, so this looks at those only: the expiry
    /// index keeps 4-byte tags instead of copies of the keys and tells its
    /// records apart with `pred`.
    #[inline]
    pub fn find_tag_by(&self, tag: u32, mut pred: impl FnMut(&E) -> bool) -> Option<Pos> {
        let pi = self.part_index(tag);
        let part = &self.parts[pi];
        if part.len == 0 {
            return None;
        }
        let mut i = part.lower_bound(tag);
        while i < part.tags.len() && part.tags[i] == tag {
            if let Some(e) = &part.slots[i] {
                if pred(e) {
                    return Some(Pos {
                        part: pi as u32,
                        idx: i as u32,
                    });
                }
            }
            i += 1;
        }
        None
    }
}

impl<E: Keyed> Table<E> {
    /// Visits entries in tag order starting at tag `cursor` (0 = the start)
    /// until `count` entries were visited, keeping entries with equal tags
    /// together. Returns the next cursor, or 0 when the table was finished.
    pub fn scan(&self, cursor: u32, count: usize, mut f: impl FnMut(&E)) -> u32 {
        let count = count.max(1);
        let mut seen = 0usize;
        let mut tag = cursor.max(1);
        let mut last_tag = 0u32;
        loop {
            let pi = self.part_index(tag);
            let part = &self.parts[pi];
            if part.len > 0 {
                let mut i = part.lower_bound(tag);
                while i < part.tags.len() {
                    // Walking a whole keyspace is bound by cache misses on
                    // the entries: start loading the ones a few slots ahead.
                    if let Some(Some(e)) = part.slots.get(i + PREFETCH_AHEAD) {
                        e.prefetch();
                    }
                    let t = part.tags[i];
                    if t != 0 {
                        if seen >= count && t != last_tag {
                            return t;
                        }
                        if let Some(e) = &part.slots[i] {
                            f(e);
                        }
                        seen += 1;
                        last_tag = t;
                    }
                    i += 1;
                }
            }
            match part.range_end() {
                Some(end) => tag = end,
                None => return 0,
            }
        }
    }
    /// As [`Table::scan`], with mutable access to each entry (the snapshot
    /// walker marks the records it serialized).
    pub fn scan_mut(&mut self, cursor: u32, count: usize, mut f: impl FnMut(&mut E)) -> u32 {
        let count = count.max(1);
        let mut seen = 0usize;
        let mut tag = cursor.max(1);
        let mut last_tag = 0u32;
        loop {
            let pi = self.part_index(tag);
            let part = &mut self.parts[pi];
            if part.len > 0 {
                let mut i = part.lower_bound(tag);
                while i < part.tags.len() {
                    // Walking a whole keyspace is bound by cache misses on
                    // the entries: start loading the ones a few slots ahead.
                    if let Some(Some(e)) = part.slots.get(i + PREFETCH_AHEAD) {
                        e.prefetch();
                    }
                    let t = part.tags[i];
                    if t != 0 {
                        if seen >= count && t != last_tag {
                            return t;
                        }
                        if let Some(e) = &mut part.slots[i] {
                            f(e);
                        }
                        seen += 1;
                        last_tag = t;
                    }
                    i += 1;
                }
            }
            match part.range_end() {
                Some(end) => tag = end,
                None => return 0,
            }
        }
    }

    /// The part holding `hash`'s tag, and the tag; None while the table is empty.
    #[inline]
    fn part_of(&self, hash: u64) -> Option<(&Part<E>, u32)> {
        if self.len == 0 {
            return None;
        }
        let tag = tag_of(hash);
        Some((&self.parts[self.part_index(tag)], tag))
    }

    /// Batched lookups, step 1: starts loading the tag and slot lines a lookup
    /// of `hash` probes first. Issued for every key of a pipelined batch before
    /// any is looked up, the cache misses overlap instead of adding up.
    #[inline]
    pub fn prefetch_home(&self, hash: u64) {
        let Some((part, tag)) = self.part_of(hash) else {
            return;
        };
        let i = part.home(tag);
        if i < part.tags.len() {
            prefetch_line(&part.tags[i]);
            prefetch_line(&part.slots[i]);
        }
    }

    /// Batched lookups, step 2 (after step 1 for the whole batch): starts
    /// loading the entry stored under `hash`'s tag, if any.
    #[inline]
    pub fn prefetch_entry(&self, hash: u64) {
        let Some((part, tag)) = self.part_of(hash) else {
            return;
        };
        let i = part.lower_bound(tag);
        if i < part.tags.len() && part.tags[i] == tag {
            if let Some(e) = &part.slots[i] {
                e.prefetch();
            }
        }
    }

    /// Finds `key` (with its precomputed hash).
    #[inline]
    pub fn find_hashed(&self, hash: u64, key: &[u8]) -> Option<Pos> {
        self.find_tag_by(tag_of(hash), |e| e.key() == key)
    }

    /// Finds `key`.
    #[inline]
    pub fn find(&self, key: &[u8]) -> Option<Pos> {
        self.find_hashed(hash(key), key)
    }

    /// The entry stored under `key`.
    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<&E> {
        self.find(key).map(|p| self.at(p))
    }

    /// The entry stored under `key`, mutably.
    #[inline]
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut E> {
        self.find(key).map(|p| self.at_mut(p))
    }

    /// Removes the entry stored under `key`.
    pub fn remove(&mut self, key: &[u8]) -> Option<E> {
        self.find(key).map(|p| self.remove_at(p))
    }

    /// Inserts `entry`, replacing (and returning) any entry with the same key.
    pub fn insert(&mut self, entry: E) -> Option<E> {
        let h = hash(entry.key());
        if let Some(p) = self.find_hashed(h, entry.key()) {
            return Some(std::mem::replace(self.at_mut(p), entry));
        }
        self.insert_new_hashed(h, entry);
        None
    }

    /// Inserts an entry whose key is known to be absent; returns its position.
    pub fn insert_new_hashed(&mut self, hash: u64, entry: E) -> Pos {
        let tag = tag_of(hash);
        let mut pi = self.part_index(tag);
        {
            let part = &self.parts[pi];
            if (part.len + 1) * 100 > part.cap * MAX_LOAD_PCT {
                self.grow(pi);
                pi = self.part_index(tag);
            }
        }
        let part = &mut self.parts[pi];
        let home = part.home(tag);
        let mut i = home;
        while i < part.tags.len() {
            let t = part.tags[i];
            if t == 0 || t > tag {
                break;
            }
            i += 1;
        }
        if i == part.tags.len() {
            part.push_tail();
        }
        if part.tags[i] != 0 {
            // Shift the run [i, first empty) right by one to keep tag order.
            let mut j = i;
            while j < part.tags.len() && part.tags[j] != 0 {
                j += 1;
            }
            if j == part.tags.len() {
                part.push_tail();
            }
            part.tags.copy_within(i..j, i + 1);
            part.slots[i..=j].rotate_right(1);
        }
        part.tags[i] = tag;
        part.slots[i] = Some(entry);
        part.len += 1;
        self.len += 1;
        Pos {
            part: pi as u32,
            idx: i as u32,
        }
    }

    /// Makes room in part `pi`: grow its home range, or split it when at the maximum.
    fn grow(&mut self, pi: usize) {
        let part = &mut self.parts[pi];
        if part.cap < PART_MAX_CAP || part.depth == 32 {
            let cap = if part.cap == 0 {
                MIN_CAP
            } else {
                (part.cap * 3 / 2).clamp(part.cap + 1, PART_MAX_CAP)
            };
            part.rebuild(cap.max(cap_for(part.len + 1)));
            return;
        }
        // Split by the next bit of the tag: entries are in tag order, so the
        // lower half is a prefix.
        let depth = part.depth + 1;
        let lo = part.lo;
        let mid = lo as u64 + (1u64 << (32 - depth));
        let mut entries = part.take_all();
        let split_at = entries.partition_point(|(t, _)| (*t as u64) < mid);
        let upper = entries.split_off(split_at);
        let mut left = Part::empty(depth, lo);
        left.fill(entries);
        let mut right = Part::empty(depth, mid as u32);
        right.fill(upper);
        self.parts[pi] = left;
        let ri = self.parts.len() as u32;
        self.parts.push(right);
        if depth > self.depth {
            // Double the directory: each slot becomes two.
            let old = std::mem::take(&mut self.dir);
            self.dir = old.iter().flat_map(|&p| [p, p]).collect();
            self.depth += 1;
        }
        // Directory slots of the upper half now point at the new part.
        let shift = self.depth - depth;
        let first = ((mid >> (32 - self.depth)) as usize) & !((1usize << shift) - 1);
        for d in first..first + (1usize << shift) {
            self.dir[d] = ri;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    fn key(i: u64) -> Box<[u8]> {
        format!("key:{i:012}").into_bytes().into_boxed_slice()
    }

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    fn check_invariants(t: &Table<Box<[u8]>>) {
        let mut total = 0;
        for (pi, p) in t.parts.iter().enumerate() {
            let mut last = 0u32;
            let mut n = 0;
            for (i, &tag) in p.tags.iter().enumerate() {
                if tag == 0 {
                    assert!(p.slots[i].is_none());
                    continue;
                }
                n += 1;
                assert!(tag >= last, "sorted");
                last = tag;
                let home = p.home(tag);
                assert!(i >= home, "never before home");
                for j in home..i {
                    assert_ne!(p.tags[j], 0, "no hole between home and entry");
                }
                let e = p.slots[i].as_ref().unwrap();
                assert_eq!(tag_of(hash(e)), tag);
                assert_eq!(t.part_index(tag), pi, "directory maps the tag here");
            }
            assert_eq!(n, p.len);
            total += n;
        }
        assert_eq!(total, t.len());
    }

    #[test]
    fn matches_a_hashmap_under_random_ops() {
        let mut t: Table<Box<[u8]>> = Table::new();
        let mut m: HashSet<u64> = HashSet::new();
        let mut r = Rng(0x1234_5678_9abc_def1);
        for round in 0..200_000u64 {
            let k = r.next() % 60_000;
            match r.next() % 3 {
                0 | 1 => {
                    let was = t.insert(key(k)).is_some();
                    assert_eq!(was, !m.insert(k));
                }
                _ => {
                    let was = t.remove(&key(k)).is_some();
                    assert_eq!(was, m.remove(&k));
                }
            }
            if round % 50_000 == 0 {
                check_invariants(&t);
            }
        }
        check_invariants(&t);
        assert_eq!(t.len(), m.len());
        for k in 0..60_000 {
            assert_eq!(t.get(&key(k)).is_some(), m.contains(&k));
        }
    }

    #[test]
    fn grows_by_splitting_parts() {
        let mut t: Table<Box<[u8]>> = Table::new();
        for i in 0..200_000 {
            t.insert(key(i));
        }
        check_invariants(&t);
        assert!(t.parts.len() > 4, "big tables are split into parts");
        let load = t.len() as f64 / t.slot_capacity() as f64;
        assert!(load > 0.5, "load {load}");
        for i in 0..200_000 {
            assert!(t.remove(&key(i)).is_some());
        }
        assert!(t.is_empty());
        check_invariants(&t);
    }

    #[test]
    fn scan_returns_every_stable_key_while_the_table_grows() {
        let mut t: Table<Box<[u8]>> = Table::new();
        for i in 0..1000 {
            t.insert(key(i));
        }
        let mut seen: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut cursor = 0;
        let mut next_new = 1_000_000;
        loop {
            cursor = t.scan(cursor, 10, |e| *seen.entry(e.to_vec()).or_default() += 1);
            // Grow the table faster than the scan advances (it still ends:
            // the cursor moves through a fixed tag space).
            for _ in 0..20 {
                t.insert(key(next_new));
                next_new += 1;
            }
            if cursor == 0 {
                break;
            }
        }
        for i in 0..1000 {
            assert_eq!(seen.get(&key(i).to_vec()), Some(&1), "key {i} once");
        }
    }

    #[test]
    fn scan_survives_shrinking() {
        let mut t: Table<Box<[u8]>> = Table::new();
        for i in 0..50_000 {
            t.insert(key(i));
        }
        let mut seen = HashSet::new();
        let mut cursor = 0;
        let mut del = 10_000;
        loop {
            cursor = t.scan(cursor, 100, |e| {
                seen.insert(e.to_vec());
            });
            for _ in 0..400 {
                if del < 50_000 {
                    t.remove(&key(del));
                    del += 1;
                }
            }
            if cursor == 0 {
                break;
            }
        }
        for i in 0..10_000 {
            assert!(seen.contains(&key(i).to_vec()));
        }
    }

    #[test]
    fn prefetching_any_hash_is_harmless() {
        // Hints only: for present and absent keys, on empty, small, split and
        // emptied tables, they must stay in bounds and change nothing.
        let mut t: Table<Box<[u8]>> = Table::new();
        let probe = |t: &Table<Box<[u8]>>, n: u64| {
            for i in 0..n + 100 {
                t.prefetch_home(hash(&key(i)));
            }
            for i in 0..n + 100 {
                t.prefetch_entry(hash(&key(i)));
            }
            for h in [0, 1, u64::MAX, 1 << 32, (u32::MAX as u64) << 32] {
                t.prefetch_home(h);
                t.prefetch_entry(h);
            }
        };
        probe(&t, 0);
        for n in [1u64, 5, 1000, 100_000] {
            for i in 0..n {
                t.insert(key(i));
            }
            probe(&t, n);
            assert_eq!(t.len(), n as usize);
            assert!((0..n).all(|i| t.get(&key(i)).is_some()));
            t.clear();
        }
        for i in 0..100_000 {
            t.insert(key(i));
        }
        for i in 0..99_990 {
            t.remove(&key(i));
        }
        probe(&t, 100_000);
        assert_eq!(t.len(), 10);
    }

    #[test]
    fn find_tag_by_tells_apart_entries_with_one_tag() {
        let mut t: Table<Box<[u8]>> = Table::new();
        for i in 0..10_000 {
            t.insert(key(i));
        }
        for i in (0..10_000).step_by(7) {
            let tag = tag_of(hash(&key(i)));
            let p = t.find_tag_by(tag, |e| **e == *key(i)).unwrap();
            assert_eq!(t.at(p), &key(i));
            assert_eq!(t.find_tag_by(tag, |_| false), None);
        }
        // Force one tag on many entries (a table keyed by something else).
        struct Same(Box<[u8]>);
        impl Keyed for Same {
            fn key(&self) -> &[u8] {
                &self.0
            }
        }
        let mut t: Table<Same> = Table::new();
        for i in 0..50 {
            t.insert_new_hashed(42 << 32, Same(key(i)));
        }
        for i in 0..50 {
            let p = t.find_tag_by(42, |e| e.0 == key(i)).unwrap();
            assert_eq!(t.at(p).0, key(i));
        }
        assert_eq!(t.find_tag_by(43, |_| true), None);
    }

    #[test]
    fn random_pos_finds_entries() {
        let mut t: Table<Box<[u8]>> = Table::new();
        let mut r = Rng(99);
        assert!(t.random_pos(|| r.next()).is_none());
        for i in 0..100 {
            t.insert(key(i));
        }
        let mut seen = HashSet::new();
        for _ in 0..5000 {
            let p = t.random_pos(|| r.next()).unwrap();
            seen.insert(t.at(p).to_vec());
        }
        assert!(seen.len() > 90, "roughly uniform: saw {}", seen.len());
    }
}
