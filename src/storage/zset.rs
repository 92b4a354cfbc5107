//! A sorted set: members ordered by (score, member) value, with Redis's compact and large encodings.
//!
//! * `listpack` (small sets): one contiguous byte buffer of entries
//!   `[score: f64 LE][member length: varint][member]`, kept sorted. Every
//!   operation is a linear walk, as Redis's listpack is; the thresholds keep it short.
//! * `skiplist` (the name OBJECT ENCODING reports for large sets): an
//!   order-statistic structure plus a member→score hash table, as Redis pairs
//!   its skiplist with a dict. The ordered part is a two-level B+tree: sorted
//!   leaf chunks of at most [`CHUNK_MAX`] `(score, member)` pairs (24 bytes
//!   each), found by binary search over the chunks' last keys, with a Fenwick
//!   tree over the chunk sizes for O(log n) rank and select. A chunk split or
//!   merge (one per ~64 writes) also shifts the chunk array and rebuilds the
//!   Fenwick tree, a linear but tiny pass (16 bytes per 64+ members).
//!   Members of up to 15 bytes are stored inline in their 16-byte slot (no
//!   allocation); longer ones live on the heap once, and the hash table's
//!   entry points at the tree's copy (as Redis shares one sds).
//!
//! Why not a pointer skiplist: per member it needs a node allocation with a
//! level array and a backward link plus the dict entry; this layout measured
//! 85.2 B/member used_memory (91.6 B RSS) for 1M `m:<i>` members against
//! Redis 7.0's 109.7 (116.7 RSS), and range walks read contiguous memory.
//!
//! Scores stored in a listpack go through Redis's d2string, which turns -0 into 0;
//! the skiplist keeps -0. Both quirks are reproduced.

use super::varint;
use std::cmp::Ordering;
use std::num::NonZeroU64;

use super::table::{Keyed, Table};

/// Largest leaf chunk of the skiplist encoding's ordered tree; full chunks split in two.
pub const CHUNK_MAX: usize = 128;

/// Compares two (score, member) keys in Redis's sorted-set order.
#[inline]
pub fn cmp_key(s1: f64, m1: &[u8], s2: f64, m2: &[u8]) -> Ordering {
    if s1 < s2 {
        Ordering::Less
    } else if s1 > s2 {
        Ordering::Greater
    } else {
        m1.cmp(m2)
    }
}

/// What `ZSetValue::set` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetOutcome {
    /// The member was new.
    Added,
    /// The member existed with another score.
    Updated,
    /// The member existed with the same score.
    Unchanged,
}

/// Encoding thresholds (zset-max-listpack-entries, zset-max-listpack-value).
#[derive(Clone, Copy, Debug)]
pub struct ZLimits {
    /// zset-max-listpack-entries.
    pub max_entries: usize,
    /// zset-max-listpack-value.
    pub max_value: usize,
}

impl From<&super::Limits> for ZLimits {
    fn from(l: &super::Limits) -> Self {
        ZLimits {
            max_entries: l.zset_max_listpack_entries,
            max_value: l.zset_max_listpack_value,
        }
    }
}

// ---------------------------------------------------------------- listpack

/// Score tags of a listpack entry: a first byte up to `SCORE_SMALL_MAX` is a
/// small integer (zigzag), `SCORE_INT` announces a zigzag varint integer,
/// `SCORE_F64` eight bytes of f64. Integral scores, the common case, take 1-3 bytes.
const SCORE_SMALL_MAX: u8 = 0xfd;
const SCORE_INT: u8 = 0xfe;
const SCORE_F64: u8 = 0xff;

/// Appends one listpack entry. -0 is stored as 0, as Redis's d2string does.
fn push_entry(out: &mut Vec<u8>, member: &[u8], score: f64) {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53: integers exact in an f64
    if score.fract() == 0.0 && score.abs() <= EXACT {
        let i = score as i64;
        let z = ((i << 1) ^ (i >> 63)) as u64;
        if z <= SCORE_SMALL_MAX as u64 {
            out.push(z as u8);
        } else {
            out.push(SCORE_INT);
            varint::push(out, z as usize);
        }
    } else {
        out.push(SCORE_F64);
        out.extend_from_slice(&score.to_le_bytes());
    }
    varint::push(out, member.len());
    out.extend_from_slice(member);
}

/// Decodes an entry's score; returns it and the bytes it took.
#[inline]
fn read_score(b: &[u8]) -> Option<(f64, usize)> {
    let unzig = |z: u64| ((z >> 1) as i64 ^ -((z & 1) as i64)) as f64;
    match *b.first()? {
        SCORE_F64 => Some((f64::from_le_bytes(b.get(1..9)?.try_into().ok()?), 9)),
        SCORE_INT => {
            let (z, n) = varint::read(&b[1..]);
            Some((unzig(z as u64), 1 + n))
        }
        small => Some((unzig(small as u64), 1)),
    }
}

/// The compact encoding: sorted entries in one buffer.
#[derive(Debug, Clone, Default, PartialEq)]
struct Listpack {
    buf: Vec<u8>,
    len: usize,
}

/// One decoded listpack entry: member, score, and its byte range.
#[derive(Clone, Copy)]
struct LpEntry<'a> {
    member: &'a [u8],
    score: f64,
    start: usize,
    end: usize,
}

struct LpIter<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Iterator for LpIter<'a> {
    type Item = LpEntry<'a>;
    #[inline]
    fn next(&mut self) -> Option<LpEntry<'a>> {
        if self.at >= self.buf.len() {
            return None;
        }
        let start = self.at;
        let (score, sn) = read_score(&self.buf[start..])?;
        let (len, n) = varint::read(&self.buf[start + sn..]);
        let mstart = start + sn + n;
        let end = mstart + len;
        self.at = end;
        Some(LpEntry {
            member: &self.buf[mstart..end],
            score,
            start,
            end,
        })
    }
}

impl Listpack {
    fn iter(&self) -> LpIter<'_> {
        LpIter {
            buf: &self.buf,
            at: 0,
        }
    }

    fn find(&self, member: &[u8]) -> Option<LpEntry<'_>> {
        self.iter().find(|e| e.member == member)
    }

    /// Inserts a member known to be absent, in order.
    fn insert(&mut self, member: &[u8], score: f64) {
        // d2string turns -0 into "0" in a listpack (see the module docs).
        let score = if score == 0.0 { 0.0 } else { score };
        let at = self
            .iter()
            .find(|e| cmp_key(e.score, e.member, score, member) == Ordering::Greater)
            .map_or(self.buf.len(), |e| e.start);
        let mut enc = Vec::with_capacity(10 + 2 + member.len());
        push_entry(&mut enc, member, score);
        // Exact growth, as a listpack reallocs per insert: small sets are many.
        self.buf.reserve_exact(enc.len());
        self.buf.splice(at..at, enc);
        self.len += 1;
    }

    fn remove_range_bytes(&mut self, start: usize, end: usize, n: usize) {
        self.buf.drain(start..end);
        self.len -= n;
        if self.buf.capacity() > self.buf.len() + 64 {
            self.buf.shrink_to_fit();
        }
    }

    /// Byte offset of the entry at `rank` (or the end).
    fn offset_of(&self, rank: usize) -> usize {
        self.iter().nth(rank).map_or(self.buf.len(), |e| e.start)
    }
}

// ---------------------------------------------------------------- skiplist

/// A member's bytes in 16 bytes: inline when at most 15 bytes long (the last
/// byte is then `0x80 | len`), else a pointer and length of a heap buffer
/// (the length's top byte, the last byte on little-endian, is then < 0x80).
#[repr(C)]
#[derive(Clone, Copy)]
union Repr {
    inline: [u8; 16],
    heap: HeapRepr,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct HeapRepr {
    ptr: *mut u8,
    len: usize,
}

// The tag byte is the length's most significant byte only on little-endian targets.
const _: () = assert!(cfg!(target_endian = "little"));
const _: () = assert!(std::mem::size_of::<Repr>() == 16);
const _: () = assert!(std::mem::size_of::<Option<MEntry>>() == 24);

const INLINE_MAX: usize = 15;

impl Repr {
    #[inline]
    fn is_inline(&self) -> bool {
        // SAFETY: every bit pattern is a valid [u8; 16]; both variants are 16 bytes.
        unsafe { self.inline[15] & 0x80 != 0 }
    }

    #[inline]
    fn bytes(&self) -> &[u8] {
        if self.is_inline() {
            // SAFETY: inline variant (tag bit set): the length is in the low bits
            // of the last byte and is at most 15, so the slice is in bounds.
            unsafe { &self.inline[..(self.inline[15] & 0x7f) as usize] }
        } else {
            // SAFETY: heap variant: `ptr`/`len` come from `Box::into_raw` of a
            // live boxed slice (see `Member::new`) that outlives every reader.
            unsafe { std::slice::from_raw_parts(self.heap.ptr, self.heap.len) }
        }
    }
}

/// An owned member (see `Repr`): the tree's copy.
struct Member(Repr);

// SAFETY: a Member owns its heap buffer exclusively (like a Box<[u8]>) and has
// no interior mutability, so moving or sharing it across threads is sound.
unsafe impl Send for Member {}
// SAFETY: as above; `&Member` only gives read access to the bytes.
unsafe impl Sync for Member {}

impl Member {
    fn new(b: &[u8]) -> Member {
        if b.len() <= INLINE_MAX {
            let mut inline = [0u8; 16];
            inline[..b.len()].copy_from_slice(b);
            inline[15] = 0x80 | b.len() as u8;
            Member(Repr { inline })
        } else {
            let len = b.len();
            // Lengths are bounded by proto-max-bulk-len, far below 2^56.
            assert!(len < 1 << 56, "member too long");
            let ptr = Box::into_raw(Box::<[u8]>::from(b)) as *mut u8;
            Member(Repr {
                heap: HeapRepr { ptr, len },
            })
        }
    }

    /// A non-owning copy for the map (valid while this member lives).
    fn share(&self) -> MemberRef {
        MemberRef(self.0)
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if !self.0.is_inline() {
            // SAFETY: heap variant: the pointer and length came from
            // `Box::into_raw` in `Member::new` and are freed exactly once, here.
            unsafe {
                let h = self.0.heap;
                drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                    h.ptr, h.len,
                )));
            }
        }
    }
}

impl std::ops::Deref for Member {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        self.0.bytes()
    }
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self))
    }
}

/// The map's view of a member: a bitwise copy of the tree's `Member`, so short
/// members are stored inline twice (free) and long ones once, shared.
#[derive(Clone, Copy)]
struct MemberRef(Repr);

/// A member→score entry of the skiplist encoding's hash table.
struct MEntry {
    member: MemberRef,
    /// The score's bits XOR a NaN pattern: never zero (scores are never NaN),
    /// which gives `Option<MEntry>` (a table slot) a niche: 24 bytes, not 32.
    sx: NonZeroU64,
}

/// A NaN bit pattern; no stored score has it.
const SCORE_KEY: u64 = 0x7ff8_5eed_0000_0001;

impl MEntry {
    fn new(member: MemberRef, score: f64) -> MEntry {
        MEntry {
            member,
            sx: NonZeroU64::new(score.to_bits() ^ SCORE_KEY).unwrap_or(NonZeroU64::MIN),
        }
    }

    #[inline]
    fn score(&self) -> f64 {
        f64::from_bits(self.sx.get() ^ SCORE_KEY)
    }

    fn set_score(&mut self, score: f64) {
        *self = MEntry::new(self.member, score);
    }
}

// SAFETY: an MEntry is private to its `Big` and only points at bytes owned by
// that same `Big`'s tree; a `Big` moves between threads as a whole (ownership
// of the bytes moves with it), and nothing is shared between two `Big`s.
unsafe impl Send for MEntry {}

impl std::fmt::Debug for MEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?}={}",
            String::from_utf8_lossy(self.key()),
            self.score()
        )
    }
}

impl Keyed for MEntry {
    #[inline]
    fn key(&self) -> &[u8] {
        // An inline copy is self-contained. A heap one points at the buffer of
        // the tree's `Member` for the same element: that buffer never moves
        // while the Member moves between chunks, and every path that drops a
        // tree item (`remove`, `remove_range`) removes this entry first or
        // while the item is still held, so the bytes are alive here.
        self.member.0.bytes()
    }
}

type Item = (f64, Member);

/// The order-statistic two-level B+tree (see the module docs).
#[derive(Debug, Default)]
struct Tree {
    chunks: Vec<Vec<Item>>,
    /// Fenwick tree over chunk lengths, 1-based (`fen[0]` unused).
    fen: Vec<usize>,
    len: usize,
}

impl Tree {
    fn rebuild_fen(&mut self) {
        let n = self.chunks.len();
        self.fen.clear();
        self.fen.resize(n + 1, 0);
        for i in 1..=n {
            self.fen[i] += self.chunks[i - 1].len();
            let j = i + (i & i.wrapping_neg());
            if j <= n {
                let v = self.fen[i];
                self.fen[j] += v;
            }
        }
    }

    fn fen_add(&mut self, ci: usize, delta: isize) {
        let mut i = ci + 1;
        while i < self.fen.len() {
            self.fen[i] = (self.fen[i] as isize + delta) as usize;
            i += i & i.wrapping_neg();
        }
    }

    /// Elements in chunks before `ci`.
    fn prefix(&self, ci: usize) -> usize {
        let mut i = ci;
        let mut s = 0;
        while i > 0 {
            s += self.fen[i];
            i -= i & i.wrapping_neg();
        }
        s
    }

    /// The chunk and index of the element at `rank` (< len).
    fn select(&self, rank: usize) -> (usize, usize) {
        let n = self.chunks.len();
        let mut pos = 0;
        let mut rem = rank;
        let mut step = if n == 0 {
            0
        } else {
            1 << (usize::BITS - 1 - n.leading_zeros())
        };
        while step > 0 {
            let next = pos + step;
            if next <= n && self.fen[next] <= rem {
                pos = next;
                rem -= self.fen[next];
            }
            step >>= 1;
        }
        (pos, rem)
    }

    /// The chunk an element with this key belongs to (for insertion or lookup).
    fn chunk_for(&self, score: f64, member: &[u8]) -> usize {
        let ci = self.chunks.partition_point(|c| {
            let (s, m) = c.last().expect("chunks are never empty");
            cmp_key(*s, m, score, member) == Ordering::Less
        });
        ci.min(self.chunks.len().saturating_sub(1))
    }

    fn locate(&self, score: f64, member: &[u8]) -> Option<(usize, usize)> {
        if self.chunks.is_empty() {
            return None;
        }
        let ci = self.chunk_for(score, member);
        self.chunks[ci]
            .binary_search_by(|(s, m)| cmp_key(*s, m, score, member))
            .ok()
            .map(|i| (ci, i))
    }

    fn insert(&mut self, score: f64, member: Member) {
        self.len += 1;
        if self.chunks.is_empty() {
            self.chunks.push(vec![(score, member)]);
            self.rebuild_fen();
            return;
        }
        let ci = self.chunk_for(score, &member);
        let c = &mut self.chunks[ci];
        let i = c
            .binary_search_by(|(s, m)| cmp_key(*s, m, score, &member))
            .unwrap_or_else(|i| i);
        if c.len() == c.capacity() {
            // Grow by a quarter, not by doubling: chunks are many and long-lived,
            // so slack capacity is most of their memory otherwise.
            c.reserve_exact((c.len() / 4).max(4));
        }
        c.insert(i, (score, member));
        if c.len() > CHUNK_MAX {
            let tail = c.split_off(c.len() / 2);
            c.shrink_to(c.len() + c.len() / 4);
            self.chunks.insert(ci + 1, tail);
            self.rebuild_fen();
        } else {
            self.fen_add(ci, 1);
        }
    }

    fn remove_at(&mut self, ci: usize, i: usize) -> Item {
        self.len -= 1;
        let it = self.chunks[ci].remove(i);
        let l = self.chunks[ci].len();
        if l == 0 {
            self.chunks.remove(ci);
            self.rebuild_fen();
        } else if l < CHUNK_MAX / 4 && self.try_merge(ci) {
            self.rebuild_fen();
        } else {
            self.fen_add(ci, -1);
        }
        it
    }

    /// Merges chunk `ci` into a neighbour when both fit in one chunk.
    fn try_merge(&mut self, ci: usize) -> bool {
        let l = self.chunks[ci].len();
        if ci + 1 < self.chunks.len() && l + self.chunks[ci + 1].len() <= CHUNK_MAX * 3 / 4 {
            let next = self.chunks.remove(ci + 1);
            self.chunks[ci].extend(next);
            return true;
        }
        if ci > 0 && l + self.chunks[ci - 1].len() <= CHUNK_MAX * 3 / 4 {
            let cur = self.chunks.remove(ci);
            self.chunks[ci - 1].extend(cur);
            return true;
        }
        false
    }

    fn at(&self, rank: usize) -> &Item {
        let (ci, i) = self.select(rank);
        &self.chunks[ci][i]
    }

    fn rank_of(&self, score: f64, member: &[u8]) -> Option<usize> {
        self.locate(score, member)
            .map(|(ci, i)| self.prefix(ci) + i)
    }

    /// Number of leading elements for which `pred` holds (pred is true then false).
    fn partition_point(&self, pred: &impl Fn(f64, &[u8]) -> bool) -> usize {
        let ci = self.chunks.partition_point(|c| {
            let (s, m) = c.last().expect("chunks are never empty");
            pred(*s, m)
        });
        if ci == self.chunks.len() {
            return self.len;
        }
        self.prefix(ci) + self.chunks[ci].partition_point(|(s, m)| pred(*s, m))
    }

    /// Calls `f` for ranks lo..=hi, ascending or descending.
    fn walk(&self, lo: usize, hi: usize, rev: bool, f: &mut impl FnMut(&[u8], f64)) {
        if lo > hi || hi >= self.len {
            return;
        }
        let mut n = hi - lo + 1;
        if !rev {
            let (mut ci, mut i) = self.select(lo);
            while n > 0 {
                let c = &self.chunks[ci];
                while i < c.len() && n > 0 {
                    f(&c[i].1, c[i].0);
                    i += 1;
                    n -= 1;
                }
                ci += 1;
                i = 0;
            }
        } else {
            let (mut ci, i) = self.select(hi);
            let mut i = i as isize;
            while n > 0 {
                let c = &self.chunks[ci];
                while i >= 0 && n > 0 {
                    let e = &c[i as usize];
                    f(&e.1, e.0);
                    i -= 1;
                    n -= 1;
                }
                if ci == 0 {
                    break;
                }
                ci -= 1;
                i = self.chunks[ci].len() as isize - 1;
            }
        }
    }

    /// Removes ranks lo..=hi and returns them in order.
    fn drain(&mut self, lo: usize, hi: usize) -> Vec<Item> {
        let mut out = Vec::with_capacity(hi + 1 - lo);
        let (ci, i) = self.select(lo);
        let mut n = hi + 1 - lo;
        let mut c = ci;
        let mut i = i;
        while n > 0 && c < self.chunks.len() {
            let take = (self.chunks[c].len() - i).min(n);
            out.extend(self.chunks[c].drain(i..i + take));
            n -= take;
            c += 1;
            i = 0;
        }
        self.len -= out.len();
        self.chunks.retain(|c| !c.is_empty());
        // Merge a small chunk left at the cut with its neighbour.
        if ci < self.chunks.len() && self.chunks[ci].len() < CHUNK_MAX / 4 {
            self.try_merge(ci);
        }
        self.rebuild_fen();
        out
    }

    fn heap_size(&self) -> usize {
        self.chunks.capacity() * 24
            + self.fen.capacity() * 8
            + self
                .chunks
                .iter()
                .map(|c| {
                    c.capacity() * 24
                        + c.iter()
                            .map(|(_, m)| if m.len() > INLINE_MAX { m.len() } else { 0 })
                            .sum::<usize>()
                })
                .sum::<usize>()
    }
}

/// The large encoding: ordered tree plus member→score table.
#[derive(Debug, Default)]
struct Big {
    tree: Tree,
    map: Table<MEntry>,
}

impl Big {
    fn insert_new(&mut self, member: &[u8], score: f64) {
        let owned = Member::new(member);
        self.map.insert(MEntry::new(owned.share(), score));
        self.tree.insert(score, owned);
    }
}

// ---------------------------------------------------------------- the value

#[derive(Debug)]
enum Enc {
    Lp(Listpack),
    Sl(Box<Big>),
}

/// A sorted set: members ordered by (score, member).
#[derive(Debug)]
pub struct ZSetValue {
    enc: Enc,
}

impl Default for ZSetValue {
    fn default() -> Self {
        ZSetValue::new_listpack()
    }
}

impl Clone for ZSetValue {
    fn clone(&self) -> Self {
        match &self.enc {
            Enc::Lp(lp) => ZSetValue {
                enc: Enc::Lp(lp.clone()),
            },
            Enc::Sl(_) => {
                let mut z = ZSetValue::new_skiplist();
                self.for_each(|m, s| {
                    if let Enc::Sl(b) = &mut z.enc {
                        b.insert_new(m, s);
                    }
                });
                z
            }
        }
    }
}

impl PartialEq for ZSetValue {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self.encoding_name() == other.encoding_name()
            && self.range(0, self.len().saturating_sub(1), false)
                == other.range(0, other.len().saturating_sub(1), false)
    }
}

impl ZSetValue {
    /// An empty set in the compact encoding.
    pub fn new_listpack() -> Self {
        ZSetValue {
            enc: Enc::Lp(Listpack::default()),
        }
    }

    /// An empty set in the large encoding.
    pub fn new_skiplist() -> Self {
        ZSetValue {
            enc: Enc::Sl(Box::default()),
        }
    }

    /// A new set for a first member of length `first_len`, encoded as ZADD creates it.
    pub fn new_for(lim: ZLimits, first_len: usize) -> Self {
        if lim.max_entries == 0 || first_len > lim.max_value {
            ZSetValue::new_skiplist()
        } else {
            ZSetValue::new_listpack()
        }
    }

    /// A set holding `elems` (sorted, distinct), encoded as a *STORE result
    /// is: listpack when it fits the limits (zsetConvertToListpackIfNeeded).
    pub fn from_sorted(elems: &[(Vec<u8>, f64)], lim: ZLimits) -> Self {
        let maxlen = elems.iter().map(|(m, _)| m.len()).max().unwrap_or(0);
        if elems.len() <= lim.max_entries && maxlen <= lim.max_value {
            let mut lp = Listpack::default();
            for (m, s) in elems {
                push_entry(&mut lp.buf, m, *s);
                lp.len += 1;
            }
            lp.buf.shrink_to_fit();
            return ZSetValue { enc: Enc::Lp(lp) };
        }
        let mut big = Box::<Big>::default();
        for (m, s) in elems {
            big.insert_new(m, *s);
        }
        ZSetValue { enc: Enc::Sl(big) }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match &self.enc {
            Enc::Lp(lp) => lp.len,
            Enc::Sl(b) => b.tree.len,
        }
    }

    /// True when empty (Redis deletes empty collections).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The OBJECT ENCODING name.
    pub fn encoding_name(&self) -> &'static str {
        match &self.enc {
            Enc::Lp(_) => "listpack",
            Enc::Sl(_) => "skiplist",
        }
    }

    /// True in the compact encoding.
    pub fn is_listpack(&self) -> bool {
        matches!(self.enc, Enc::Lp(_))
    }

    /// Approximate heap bytes used.
    pub fn heap_size(&self) -> usize {
        match &self.enc {
            Enc::Lp(lp) => lp.buf.capacity(),
            Enc::Sl(b) => b.tree.heap_size() + b.map.slot_capacity() * 28,
        }
    }

    /// The member's score.
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match &self.enc {
            Enc::Lp(lp) => lp.find(member).map(|e| e.score),
            Enc::Sl(b) => b.map.get(member).map(|e| e.score()),
        }
    }

    /// Converts to the large encoding.
    pub fn convert_to_skiplist(&mut self) {
        if let Enc::Lp(lp) = &self.enc {
            let mut big = Box::<Big>::default();
            for e in lp.iter() {
                big.insert_new(e.member, e.score);
            }
            self.enc = Enc::Sl(big);
        }
    }

    /// Converts to the compact encoding when small enough (zsetConvertToListpackIfNeeded).
    pub fn convert_to_listpack_if_needed(&mut self, lim: ZLimits) {
        if self.is_listpack() || self.len() > lim.max_entries {
            return;
        }
        let mut maxlen = 0;
        self.for_each(|m, _| maxlen = maxlen.max(m.len()));
        if maxlen > lim.max_value {
            return;
        }
        let mut lp = Listpack::default();
        self.for_each(|m, s| {
            push_entry(&mut lp.buf, m, s);
            lp.len += 1;
        });
        lp.buf.shrink_to_fit();
        self.enc = Enc::Lp(lp);
    }

    /// Sets `member`'s score, adding it if new; converts to the large
    /// encoding first when a new member would break the listpack limits (zsetAdd).
    pub fn set(&mut self, member: &[u8], score: f64, lim: ZLimits) -> SetOutcome {
        match &mut self.enc {
            Enc::Lp(lp) => {
                if let Some(e) = lp.find(member) {
                    if e.score == score {
                        return SetOutcome::Unchanged;
                    }
                    let (start, end) = (e.start, e.end);
                    lp.remove_range_bytes(start, end, 1);
                    lp.insert(member, score);
                    return SetOutcome::Updated;
                }
                if lp.len + 1 > lim.max_entries || member.len() > lim.max_value {
                    self.convert_to_skiplist();
                    return self.set(member, score, lim);
                }
                lp.insert(member, score);
                SetOutcome::Added
            }
            Enc::Sl(b) => {
                if let Some(e) = b.map.get_mut(member) {
                    let old = e.score();
                    if old == score {
                        return SetOutcome::Unchanged;
                    }
                    e.set_score(score);
                    let (ci, i) = b.tree.locate(old, member).expect("map and tree agree");
                    let c = &mut b.tree.chunks[ci];
                    // Fast path: the new score keeps the element between its neighbours.
                    let fits = (i == 0
                        || cmp_key(c[i - 1].0, &c[i - 1].1, score, member) == Ordering::Less)
                        && (i + 1 == c.len()
                            || cmp_key(c[i + 1].0, &c[i + 1].1, score, member)
                                == Ordering::Greater)
                        && (i != 0 || ci == 0 || {
                            let p = b.tree.chunks[ci - 1].last().expect("non-empty");
                            cmp_key(p.0, &p.1, score, member) == Ordering::Less
                        })
                        && (i + 1 != b.tree.chunks[ci].len() || ci + 1 == b.tree.chunks.len() || {
                            let n = &b.tree.chunks[ci + 1][0];
                            cmp_key(n.0, &n.1, score, member) == Ordering::Greater
                        });
                    if fits {
                        b.tree.chunks[ci][i].0 = score;
                    } else {
                        let (_, m) = b.tree.remove_at(ci, i);
                        b.tree.insert(score, m);
                    }
                    return SetOutcome::Updated;
                }
                b.insert_new(member, score);
                SetOutcome::Added
            }
        }
    }

    /// Removes `member`; true when it was there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        match &mut self.enc {
            Enc::Lp(lp) => match lp.find(member) {
                Some(e) => {
                    let (s, t) = (e.start, e.end);
                    lp.remove_range_bytes(s, t, 1);
                    true
                }
                None => false,
            },
            Enc::Sl(b) => match b.map.remove(member) {
                Some(e) => {
                    let (ci, i) = b
                        .tree
                        .locate(e.score(), member)
                        .expect("map and tree agree");
                    b.tree.remove_at(ci, i);
                    true
                }
                None => false,
            },
        }
    }

    /// The member's 0-based rank in ascending order.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        match &self.enc {
            Enc::Lp(lp) => lp.iter().position(|e| e.member == member),
            Enc::Sl(b) => {
                let s = b.map.get(member)?.score();
                b.tree.rank_of(s, member)
            }
        }
    }

    /// The element at ascending rank `rank` (< len).
    pub fn at(&self, rank: usize) -> Option<(&[u8], f64)> {
        match &self.enc {
            Enc::Lp(lp) => lp.iter().nth(rank).map(|e| (e.member, e.score)),
            Enc::Sl(b) => (rank < b.tree.len).then(|| {
                let (s, m) = b.tree.at(rank);
                (&m[..], *s)
            }),
        }
    }

    /// Number of leading (ascending) elements for which `pred(score, member)`
    /// holds; `pred` must be true on a prefix and false after it.
    pub fn partition_point(&self, pred: impl Fn(f64, &[u8]) -> bool) -> usize {
        match &self.enc {
            Enc::Lp(lp) => lp
                .iter()
                .position(|e| !pred(e.score, e.member))
                .unwrap_or(lp.len),
            Enc::Sl(b) => b.tree.partition_point(&pred),
        }
    }

    /// Calls `f` for ranks lo..=hi (ascending ranks), visiting them in descending order when `rev`.
    pub fn walk(&self, lo: usize, hi: usize, rev: bool, mut f: impl FnMut(&[u8], f64)) {
        if lo > hi || hi >= self.len() {
            return;
        }
        match &self.enc {
            Enc::Lp(lp) => {
                let it = lp.iter().skip(lo).take(hi - lo + 1);
                if rev {
                    let v: Vec<LpEntry<'_>> = it.collect();
                    for e in v.iter().rev() {
                        f(e.member, e.score);
                    }
                } else {
                    for e in it {
                        f(e.member, e.score);
                    }
                }
            }
            Enc::Sl(b) => b.tree.walk(lo, hi, rev, &mut f),
        }
    }

    /// The elements at ranks lo..=hi as owned pairs (descending when `rev`).
    pub fn range(&self, lo: usize, hi: usize, rev: bool) -> Vec<(Vec<u8>, f64)> {
        let mut v = Vec::new();
        self.walk(lo, hi, rev, |m, s| v.push((m.to_vec(), s)));
        v
    }

    /// Calls `f` for every element in ascending order.
    pub fn for_each(&self, mut f: impl FnMut(&[u8], f64)) {
        if !self.is_empty() {
            self.walk(0, self.len() - 1, false, &mut f);
        }
    }

    /// Removes ranks lo..=hi (ascending ranks, hi < len); returns them in ascending order.
    pub fn remove_range(&mut self, lo: usize, hi: usize) -> Vec<(Vec<u8>, f64)> {
        if lo > hi || hi >= self.len() {
            return Vec::new();
        }
        match &mut self.enc {
            Enc::Lp(lp) => {
                let out: Vec<(Vec<u8>, f64)> = lp
                    .iter()
                    .skip(lo)
                    .take(hi - lo + 1)
                    .map(|e| (e.member.to_vec(), e.score))
                    .collect();
                let (s, t) = (lp.offset_of(lo), lp.offset_of(hi + 1));
                lp.remove_range_bytes(s, t, hi - lo + 1);
                out
            }
            Enc::Sl(b) => {
                let items = b.tree.drain(lo, hi);
                items
                    .into_iter()
                    .map(|(s, m)| {
                        b.map.remove(&m);
                        (m.to_vec(), s)
                    })
                    .collect()
            }
        }
    }

    /// Removes and returns up to `count` lowest-scored elements, lowest first (ZPOPMIN).
    pub fn pop_min(&mut self, count: usize) -> Vec<(Vec<u8>, f64)> {
        let n = count.min(self.len());
        if n == 0 {
            return Vec::new();
        }
        self.remove_range(0, n - 1)
    }

    /// Removes and returns up to `count` highest-scored elements, highest first (ZPOPMAX).
    pub fn pop_max(&mut self, count: usize) -> Vec<(Vec<u8>, f64)> {
        let len = self.len();
        let n = count.min(len);
        if n == 0 {
            return Vec::new();
        }
        let mut v = self.remove_range(len - n, len - 1);
        v.reverse();
        v
    }

    /// One ZSCAN step: calls `f(member, score)` and returns the next cursor.
    /// The compact encoding is returned whole (cursor 0), as Redis does.
    pub fn scan(&self, cursor: u64, count: usize, mut f: impl FnMut(&[u8], f64)) -> u64 {
        match &self.enc {
            Enc::Lp(lp) => {
                for e in lp.iter() {
                    f(e.member, e.score);
                }
                0
            }
            Enc::Sl(b) => {
                let cur = u32::try_from(cursor).unwrap_or(u32::MAX);
                b.map.scan(cur, count, |e| f(e.key(), e.score())) as u64
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lim(n: usize) -> ZLimits {
        ZLimits {
            max_entries: n,
            max_value: 64,
        }
    }

    #[test]
    fn members_inline_and_on_the_heap() {
        for len in [0usize, 1, 14, 15, 16, 17, 100] {
            let b: Vec<u8> = (0..len).map(|i| i as u8 ^ 0x80).collect();
            let m = Member::new(&b);
            assert_eq!(&*m, &b[..]);
            assert_eq!(m.share().0.bytes(), &b[..]);
        }
        let mut z = ZSetValue::new_skiplist();
        let l = lim(0);
        for len in [0usize, 15, 16, 40] {
            z.set(&vec![b'x'; len], len as f64, l);
        }
        let c = z.clone();
        assert_eq!(c, z);
        assert_eq!(z.score(&[b'x'; 16]), Some(16.0));
        assert!(z.remove(&[b'x'; 16]));
        assert_eq!(z.rank(&[b'x'; 40]), Some(2));
        let mut n = 0;
        z.scan(0, 100, |_, _| n += 1);
        assert_eq!(n, 3);
    }

    /// Checks both encodings against a sorted Vec model under random operations.
    #[test]
    fn encodings_agree_with_a_model() {
        let mut x = 12345u64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for max in [1000usize, 0] {
            let mut z = ZSetValue::new_for(lim(max), 1);
            let mut model: Vec<(f64, Vec<u8>)> = Vec::new();
            for step in 0..20000 {
                let k = rnd() % 700;
                // Short members are stored inline, long ones on the heap.
                let m = if k % 3 == 0 {
                    format!("member-with-a-long-name-{k}").into_bytes()
                } else {
                    format!("m{k}").into_bytes()
                };
                let s = match rnd() % 5 {
                    0 => -((rnd() % 400) as f64),
                    1 => (rnd() % 50) as f64 + 0.25,
                    2 => [
                        f64::INFINITY,
                        f64::NEG_INFINITY,
                        1e300,
                        -1e17,
                        9007199254740993.0,
                    ][(rnd() % 5) as usize],
                    _ => (rnd() % 50) as f64,
                };
                match rnd() % 5 {
                    0..=2 => {
                        z.set(&m, s, lim(max));
                        model.retain(|(_, mm)| *mm != m);
                        model.push((s, m.clone()));
                    }
                    3 => {
                        let a = z.remove(&m);
                        let before = model.len();
                        model.retain(|(_, mm)| *mm != m);
                        assert_eq!(a, before != model.len());
                    }
                    _ => {
                        if !model.is_empty() {
                            let lo = (rnd() % model.len() as u64) as usize;
                            let hi = (lo + (rnd() % 5) as usize).min(model.len() - 1);
                            model.sort_by(|a, b| cmp_key(a.0, &a.1, b.0, &b.1));
                            let got = z.remove_range(lo, hi);
                            let want: Vec<(Vec<u8>, f64)> =
                                model.drain(lo..=hi).map(|(s, m)| (m, s)).collect();
                            assert_eq!(got, want);
                        }
                    }
                }
                model.sort_by(|a, b| cmp_key(a.0, &a.1, b.0, &b.1));
                assert_eq!(z.len(), model.len());
                if step % 97 == 0 && !model.is_empty() {
                    let all = z.range(0, z.len() - 1, false);
                    let want: Vec<(Vec<u8>, f64)> =
                        model.iter().map(|(s, m)| (m.clone(), *s)).collect();
                    assert_eq!(all, want);
                    for (r, (s, m)) in model.iter().enumerate() {
                        assert_eq!(z.rank(m), Some(r));
                        assert_eq!(z.score(m), Some(*s));
                        assert_eq!(z.at(r), Some((&m[..], *s)));
                    }
                    let p = z.partition_point(|s, _| s < 20.0);
                    assert_eq!(p, model.iter().filter(|(s, _)| *s < 20.0).count());
                    let rev = z.range(0, z.len() - 1, true);
                    assert_eq!(rev.len(), model.len());
                    assert_eq!(rev[0].0, model.last().unwrap().1);
                }
            }
        }
    }
}
