//! A list of byte strings value, laid out as Redis 7.0's quicklist: a deque of
//! listpack nodes, each bounded by `list-max-listpack-size`.
//!
//! The API `End`, `push`, `pop`, `len`, `new` is what the blocking-command
//! framework relies on; the rest serves the list commands.
//!
//! Every node is a real listpack (header, entries with back-lengths, end
//! byte, canonical integers stored as integers), so node sizes, and therefore
//! where nodes split, match Redis, and an RDB writer can dump a node as is.
//! Redis 7.0 reports OBJECT ENCODING `quicklist` for every list, whatever its
//! size (the standalone `listpack` list encoding arrived in 7.2), and so do we.
//! `list-compress-depth` is accepted but nodes are never LZF-compressed.

use std::collections::VecDeque;

/// Which end of a list (LEFT/RIGHT in Redis's syntax).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The head (LPUSH, LPOP, LEFT).
    Head,
    /// The tail (RPUSH, RPOP, RIGHT).
    Tail,
}

/// One element as stored: listpack keeps canonical integers as integers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem<'a> {
    /// A string element.
    Str(&'a [u8]),
    /// An element that is a canonical 64-bit integer.
    Int(i64),
}

impl Elem<'_> {
    /// Calls `f` with the element's bytes (formatting an integer on the stack).
    pub fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        match *self {
            Elem::Str(s) => f(s),
            Elem::Int(i) => f(crate::util::num::format_i64(i, &mut [0; 24])),
        }
    }

    /// The element as an owned byte vector.
    pub fn to_vec(&self) -> Vec<u8> {
        self.with_bytes(|b| b.to_vec())
    }
}

/// A value to compare elements with (LREM, LPOS, LINSERT's pivot), parsed once.
#[derive(Clone, Copy, Debug)]
pub struct Matcher<'a> {
    bytes: &'a [u8],
    int: Option<i64>,
}

impl<'a> Matcher<'a> {
    /// A matcher for `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Matcher {
            bytes,
            int: lp::as_int(bytes),
        }
    }

    /// True when `e` equals the value (as lpCompare: a canonical integer is
    /// always stored as an integer, so the two forms never compare across).
    #[inline]
    pub fn matches(&self, e: Elem<'_>) -> bool {
        match e {
            Elem::Str(s) => self.int.is_none() && s == self.bytes,
            Elem::Int(i) => self.int == Some(i),
        }
    }
}

/// The listpack format: encoding and decoding of entries in a byte buffer.
mod lp {
    use super::Elem;

    /// Header: total bytes (u32 LE) and number of elements (u16 LE).
    pub const HDR: usize = 6;
    /// The end-of-listpack byte.
    pub const EOF: u8 = 0xff;

    /// An empty listpack.
    pub fn new() -> Vec<u8> {
        let mut v = Vec::with_capacity(16);
        v.extend_from_slice(&[0; HDR]);
        v.push(EOF);
        v
    }

    /// Rewrites the header after a change (count saturates at 65535 as lpSetNumElements).
    pub fn fix_header(lp: &mut [u8], count: u32) {
        let total = lp.len() as u32;
        lp[..4].copy_from_slice(&total.to_le_bytes());
        let n = count.min(u16::MAX as u32) as u16;
        lp[4..6].copy_from_slice(&n.to_le_bytes());
    }

    /// The value of `s` when listpack would store it as an integer (lpStringToInt64).
    #[inline]
    pub fn as_int(s: &[u8]) -> Option<i64> {
        crate::util::num::parse_i64(s)
    }

    /// Bytes a back-length field takes for an entry of `l` bytes.
    #[inline]
    pub fn backlen_size(l: usize) -> usize {
        match l {
            0..=127 => 1,
            128..=16382 => 2,
            16383..=2097150 => 3,
            2097151..=268435454 => 4,
            _ => 5,
        }
    }

    /// Encodes the back-length of an entry of `l` bytes (lpEncodeBacklen).
    fn encode_backlen(l: usize, buf: &mut [u8; 5]) -> usize {
        let n = backlen_size(l);
        let l = l as u64;
        // The byte at the lowest address has its high bit clear; the others
        // carry continuation bits, read from the last byte backwards.
        for (i, out) in buf.iter_mut().enumerate().take(n) {
            let shift = 7 * (n - 1 - i);
            let b = ((l >> shift) & 127) as u8;
            *out = if i == 0 { b } else { b | 128 };
        }
        n
    }

    /// Decodes a back-length whose last byte is at `p` (lpDecodeBacklen).
    fn decode_backlen(lp: &[u8], mut p: usize) -> usize {
        let mut val = 0usize;
        let mut shift = 0;
        loop {
            val |= ((lp[p] & 127) as usize) << shift;
            if lp[p] & 128 == 0 || p == 0 {
                return val;
            }
            shift += 7;
            p -= 1;
        }
    }

    /// The encoding header (and, for integers, the whole entry) of a value.
    /// Returns (header bytes, header length, whether data follows).
    fn encode_header(elem: &[u8]) -> ([u8; 9], usize, bool) {
        let mut h = [0u8; 9];
        if let Some(v) = as_int(elem) {
            let n = if (0..=127).contains(&v) {
                h[0] = v as u8;
                1
            } else if (-4096..=4095).contains(&v) {
                let u = if v < 0 { (1i64 << 13) + v } else { v } as u16;
                h[0] = ((u >> 8) as u8) | 0xc0;
                h[1] = u as u8;
                2
            } else if (-32768..=32767).contains(&v) {
                h[0] = 0xf1;
                h[1..3].copy_from_slice(&(v as i16).to_le_bytes());
                3
            } else if (-8388608..=8388607).contains(&v) {
                h[0] = 0xf2;
                h[1..4].copy_from_slice(&(v as i32).to_le_bytes()[..3]);
                4
            } else if (i32::MIN as i64..=i32::MAX as i64).contains(&v) {
                h[0] = 0xf3;
                h[1..5].copy_from_slice(&(v as i32).to_le_bytes());
                5
            } else {
                h[0] = 0xf4;
                h[1..9].copy_from_slice(&v.to_le_bytes());
                9
            };
            return (h, n, false);
        }
        let len = elem.len();
        let n = if len < 64 {
            h[0] = 0x80 | len as u8;
            1
        } else if len < 4096 {
            h[0] = 0xe0 | (len >> 8) as u8;
            h[1] = len as u8;
            2
        } else {
            h[0] = 0xf0;
            h[1..5].copy_from_slice(&(len as u32).to_le_bytes());
            5
        };
        (h, n, true)
    }

    /// Inserts `elem` as an entry at byte offset `off`; returns the entry's size.
    pub fn insert(lp: &mut Vec<u8>, off: usize, elem: &[u8]) -> usize {
        let (h, hn, data) = encode_header(elem);
        let enc = hn + if data { elem.len() } else { 0 };
        let mut bl = [0u8; 5];
        let bn = encode_backlen(enc, &mut bl);
        let total = enc + bn;
        let old = lp.len();
        reserve(lp, total);
        lp.resize(old + total, 0);
        lp.copy_within(off..old, off + total);
        lp[off..off + hn].copy_from_slice(&h[..hn]);
        if data {
            lp[off + hn..off + enc].copy_from_slice(elem);
        }
        lp[off + enc..off + total].copy_from_slice(&bl[..bn]);
        total
    }

    /// Grows capacity geometrically but never far past a node's natural size,
    /// so a node that stops growing wastes little.
    fn reserve(lp: &mut Vec<u8>, extra: usize) {
        let need = lp.len() + extra;
        if need <= lp.capacity() {
            return;
        }
        let target = (lp.capacity() * 2).clamp(need, need.max(1 << 16));
        lp.reserve_exact(target - lp.len());
    }

    /// The entry at `off` and the offset just past it.
    #[inline]
    pub fn entry(lp: &[u8], off: usize) -> (Elem<'_>, usize) {
        let b = lp[off];
        let (e, enc) = if b & 0x80 == 0 {
            (Elem::Int(b as i64), 1)
        } else if b & 0xc0 == 0x80 {
            let len = (b & 0x3f) as usize;
            (Elem::Str(&lp[off + 1..off + 1 + len]), 1 + len)
        } else if b & 0xe0 == 0xc0 {
            let u = (((b & 0x1f) as i64) << 8) | lp[off + 1] as i64;
            let v = if u >= 1 << 12 { u - (1 << 13) } else { u };
            (Elem::Int(v), 2)
        } else if b & 0xf0 == 0xe0 {
            let len = (((b & 0x0f) as usize) << 8) | lp[off + 1] as usize;
            (Elem::Str(&lp[off + 2..off + 2 + len]), 2 + len)
        } else {
            match b {
                0xf0 => {
                    let len = u32::from_le_bytes(le::<4>(&lp[off + 1..])) as usize;
                    (Elem::Str(&lp[off + 5..off + 5 + len]), 5 + len)
                }
                0xf1 => (
                    Elem::Int(i16::from_le_bytes(le::<2>(&lp[off + 1..])) as i64),
                    3,
                ),
                0xf2 => {
                    let b3 = le::<3>(&lp[off + 1..]);
                    // Sign-extend the 24-bit value.
                    let v = i32::from_le_bytes([0, b3[0], b3[1], b3[2]]) >> 8;
                    (Elem::Int(v as i64), 4)
                }
                0xf3 => (
                    Elem::Int(i32::from_le_bytes(le::<4>(&lp[off + 1..])) as i64),
                    5,
                ),
                _ => (Elem::Int(i64::from_le_bytes(le::<8>(&lp[off + 1..]))), 9),
            }
        };
        (e, off + enc + backlen_size(enc))
    }

    #[inline]
    fn le<const N: usize>(b: &[u8]) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(&b[..N]);
        a
    }

    /// The offset of the entry before the one (or the end byte) at `off`.
    #[inline]
    pub fn prev(lp: &[u8], off: usize) -> usize {
        let l = decode_backlen(lp, off - 1);
        off - backlen_size(l) - l
    }
}

/// FILL_MAX: the largest positive fill quicklist accepts.
const FILL_MAX: i64 = 32767;
/// The most bytes a count-limited node may hold (SIZE_SAFETY_LIMIT).
const SIZE_SAFETY_LIMIT: usize = 8192;
/// Per-entry overhead quicklist adds to its size estimate (SIZE_ESTIMATE_OVERHEAD).
const SIZE_ESTIMATE_OVERHEAD: usize = 8;
/// Node byte limits for fill -1 .. -5.
const OPTIMIZATION_LEVEL: [usize; 5] = [4096, 8192, 16384, 32768, 65536];

/// One quicklist node: a listpack and its element count.
#[derive(Clone)]
struct Node {
    lp: Vec<u8>,
    count: u32,
}

impl Node {
    fn new() -> Node {
        Node {
            lp: lp::new(),
            count: 0,
        }
    }

    /// Offset of the end byte.
    #[inline]
    fn end(&self) -> usize {
        self.lp.len() - 1
    }

    /// Offset of the last entry (the node is not empty).
    #[inline]
    fn last(&self) -> usize {
        lp::prev(&self.lp, self.end())
    }

    /// Offset of the `i`th entry (i <= count; count gives the end byte), walking from the nearer end.
    fn offset_of(&self, i: usize) -> usize {
        let n = self.count as usize;
        if i <= n / 2 {
            let mut off = lp::HDR;
            for _ in 0..i {
                off = lp::entry(&self.lp, off).1;
            }
            off
        } else {
            let mut off = self.end();
            for _ in i..n {
                off = lp::prev(&self.lp, off);
            }
            off
        }
    }

    /// Offset just past `k` entries starting at `off`.
    fn skip(&self, mut off: usize, k: usize) -> usize {
        for _ in 0..k {
            off = lp::entry(&self.lp, off).1;
        }
        off
    }

    fn insert(&mut self, off: usize, elem: &[u8]) {
        lp::insert(&mut self.lp, off, elem);
        self.count += 1;
        lp::fix_header(&mut self.lp, self.count);
    }

    /// Removes the bytes `from..to`, which hold `k` entries.
    fn remove(&mut self, from: usize, to: usize, k: usize) {
        self.lp.drain(from..to);
        self.count -= k as u32;
        lp::fix_header(&mut self.lp, self.count);
    }

    /// A node holding the entries in bytes `from..to` of this one (`k` of them).
    fn slice(&self, from: usize, to: usize, k: usize) -> Node {
        let mut v = Vec::with_capacity(lp::HDR + (to - from) + 1);
        v.extend_from_slice(&[0; lp::HDR]);
        v.extend_from_slice(&self.lp[from..to]);
        v.push(lp::EOF);
        let mut n = Node {
            lp: v,
            count: k as u32,
        };
        lp::fix_header(&mut n.lp, n.count);
        n
    }

    /// Drops spare capacity once the node stops growing.
    fn seal(&mut self) {
        self.lp.shrink_to_fit();
    }
}

/// A list of byte strings: see the module docs.
#[derive(Clone)]
pub struct ListValue {
    nodes: VecDeque<Node>,
    len: usize,
    /// The quicklist fill factor this list was created with (Redis keeps a
    /// list's fill from creation; CONFIG SET only affects new lists).
    fill: i16,
}

impl Default for ListValue {
    fn default() -> Self {
        ListValue::with_fill(-2)
    }
}

impl std::fmt::Debug for ListValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListValue")
            .field("len", &self.len)
            .field("nodes", &self.nodes.len())
            .field("fill", &self.fill)
            .finish()
    }
}

impl PartialEq for ListValue {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter(0).eq(other.iter(0))
    }
}

/// Whether the quicklist would add an entry of `sz` bytes to `node` (_quicklistNodeAllowInsert).
fn allow_insert(node: &Node, fill: i16, sz: usize) -> bool {
    let new_sz = node.lp.len() + sz + SIZE_ESTIMATE_OVERHEAD;
    if fill < 0 {
        let level = (-(fill as i32) - 1) as usize;
        if level < OPTIMIZATION_LEVEL.len() && new_sz <= OPTIMIZATION_LEVEL[level] {
            return true;
        }
    }
    if new_sz > SIZE_SAFETY_LIMIT {
        return false;
    }
    (node.count as i64) < fill as i64
}

impl ListValue {
    /// An empty list with the default node size (list-max-listpack-size -2).
    pub fn new() -> Self {
        ListValue::default()
    }

    /// An empty list with nodes bounded by `list-max-listpack-size` = `fill`
    /// (clamped as quicklistSetFill: at most 32767 entries, at least -5 = 64 KB).
    pub fn with_fill(fill: i64) -> Self {
        ListValue {
            nodes: VecDeque::new(),
            len: 0,
            fill: fill.clamp(-5, FILL_MAX) as i16,
        }
    }

    /// Number of elements.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty (Redis deletes empty collections).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of quicklist nodes.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The listpack of every node, head to tail (what RDB's QUICKLIST_2 type stores).
    pub fn listpacks(&self) -> impl Iterator<Item = &[u8]> {
        self.nodes.iter().map(|n| &n.lp[..])
    }

    /// Adds `elem` at `end`.
    pub fn push(&mut self, end: End, elem: &[u8]) {
        if self.nodes.capacity() == 0 {
            // Most lists are small: one node, without VecDeque's minimum of four.
            self.nodes.reserve_exact(1);
        }
        let fill = self.fill;
        match end {
            End::Head => match self.nodes.front_mut() {
                Some(n) if allow_insert(n, fill, elem.len()) => n.insert(lp::HDR, elem),
                front => {
                    if let Some(n) = front {
                        n.seal();
                    }
                    let mut n = Node::new();
                    n.insert(lp::HDR, elem);
                    self.nodes.push_front(n);
                }
            },
            End::Tail => match self.nodes.back_mut() {
                Some(n) if allow_insert(n, fill, elem.len()) => {
                    let off = n.end();
                    n.insert(off, elem)
                }
                back => {
                    if let Some(n) = back {
                        n.seal();
                    }
                    let mut n = Node::new();
                    n.insert(lp::HDR, elem);
                    self.nodes.push_back(n);
                }
            },
        }
        self.len += 1;
    }

    /// Removes and returns the element at `end`.
    pub fn pop(&mut self, end: End) -> Option<Vec<u8>> {
        let ni = match end {
            End::Head => 0,
            End::Tail => self.nodes.len().checked_sub(1)?,
        };
        let node = self.nodes.get_mut(ni)?;
        let off = match end {
            End::Head => lp::HDR,
            End::Tail => node.last(),
        };
        let (e, next) = lp::entry(&node.lp, off);
        let v = e.to_vec();
        node.remove(off, next, 1);
        if node.count == 0 {
            self.nodes.remove(ni);
        }
        self.len -= 1;
        Some(v)
    }

    /// Converts a Redis index (negative counts from the tail) to a position, if in range.
    pub fn norm_index(&self, index: i64) -> Option<usize> {
        let i = if index < 0 {
            (self.len as i64).checked_add(index)?
        } else {
            index
        };
        (i >= 0 && (i as u64) < self.len as u64).then_some(i as usize)
    }

    /// The node and the position within it of element `i` (< len), skipping
    /// whole nodes from the nearer end.
    fn locate(&self, i: usize) -> (usize, usize) {
        if i < self.len / 2 {
            let mut acc = 0;
            for (ni, n) in self.nodes.iter().enumerate() {
                let c = n.count as usize;
                if i < acc + c {
                    return (ni, i - acc);
                }
                acc += c;
            }
        } else {
            let mut acc = self.len;
            for (ni, n) in self.nodes.iter().enumerate().rev() {
                let c = n.count as usize;
                acc -= c;
                if i >= acc {
                    return (ni, i - acc);
                }
            }
        }
        unreachable!("locate({i}) past the list's length {}", self.len)
    }

    /// The element at `index` (negative counts from the tail).
    pub fn get(&self, index: i64) -> Option<Elem<'_>> {
        let i = self.norm_index(index)?;
        let (ni, li) = self.locate(i);
        let n = &self.nodes[ni];
        Some(lp::entry(&n.lp, n.offset_of(li)).0)
    }

    /// Replaces the element at `index`; false when out of range.
    pub fn set(&mut self, index: i64, elem: &[u8]) -> bool {
        let Some(i) = self.norm_index(index) else {
            return false;
        };
        let (ni, li) = self.locate(i);
        let n = &mut self.nodes[ni];
        let off = n.offset_of(li);
        let next = lp::entry(&n.lp, off).1;
        // As quicklistReplaceEntry: replaced in place, the node may outgrow its limit.
        n.remove(off, next, 1);
        n.insert(off, elem);
        true
    }

    /// Elements from position `start` towards the tail (`rev` false) or the head (`rev` true).
    pub fn iter_at(&self, start: usize, rev: bool) -> Iter<'_> {
        if start >= self.len {
            return Iter {
                list: self,
                node: 0,
                off: 0,
                left: 0,
                rev,
            };
        }
        let (ni, li) = self.locate(start);
        Iter {
            list: self,
            node: ni,
            off: self.nodes[ni].offset_of(li),
            left: if rev { start + 1 } else { self.len - start },
            rev,
        }
    }

    /// Elements head to tail from position `start`.
    pub fn iter(&self, start: usize) -> Iter<'_> {
        self.iter_at(start, false)
    }

    /// Deletes `n` elements starting at position `start` (clamped to the list).
    pub fn delete_range(&mut self, start: usize, n: usize) {
        if start >= self.len || n == 0 {
            return;
        }
        let mut n = n.min(self.len - start);
        let (mut ni, li) = self.locate(start);
        self.len -= n;
        if li > 0 {
            let node = &mut self.nodes[ni];
            let take = n.min(node.count as usize - li);
            let from = node.offset_of(li);
            let to = if take == node.count as usize - li {
                node.end()
            } else {
                node.skip(from, take)
            };
            node.remove(from, to, take);
            n -= take;
            ni += 1;
        }
        // Whole nodes.
        let mut whole = 0;
        while ni + whole < self.nodes.len() && self.nodes[ni + whole].count as usize <= n {
            n -= self.nodes[ni + whole].count as usize;
            whole += 1;
        }
        if whole > 0 {
            if ni == 0 {
                for _ in 0..whole {
                    self.nodes.pop_front();
                }
            } else {
                self.nodes.drain(ni..ni + whole);
            }
        }
        if n > 0 {
            let node = &mut self.nodes[ni];
            let to = node.skip(lp::HDR, n);
            node.remove(lp::HDR, to, n);
        }
    }

    /// Inserts `elem` before (`after` false) or after the first element equal
    /// to `pivot`; false when there is no such element (LINSERT).
    pub fn insert_at_pivot(&mut self, pivot: &[u8], elem: &[u8], after: bool) -> bool {
        let m = Matcher::new(pivot);
        let mut found = None;
        'outer: for (ni, n) in self.nodes.iter().enumerate() {
            let mut off = lp::HDR;
            for li in 0..n.count as usize {
                let (e, next) = lp::entry(&n.lp, off);
                if m.matches(e) {
                    found = Some((ni, li, off, next));
                    break 'outer;
                }
                off = next;
            }
        }
        let Some((ni, li, off, next)) = found else {
            return false;
        };
        let (at, li_at) = if after { (next, li + 1) } else { (off, li) };
        self.insert_in_node(ni, at, li_at, elem);
        self.len += 1;
        true
    }

    /// Inserts `elem` into node `ni` at byte offset `at` (entry index `li`),
    /// spilling to a neighbour or splitting a full node as _quicklistInsert does.
    fn insert_in_node(&mut self, ni: usize, at: usize, li: usize, elem: &[u8]) {
        let fill = self.fill;
        let sz = elem.len();
        let node = &mut self.nodes[ni];
        if allow_insert(node, fill, sz) {
            node.insert(at, elem);
            return;
        }
        let count = node.count as usize;
        if li == count {
            if let Some(next) = self.nodes.get_mut(ni + 1) {
                if allow_insert(next, fill, sz) {
                    next.insert(lp::HDR, elem);
                    return;
                }
            }
            let mut n = Node::new();
            n.insert(lp::HDR, elem);
            self.nodes.insert(ni + 1, n);
            return;
        }
        if li == 0 {
            if ni > 0 {
                let prev = &mut self.nodes[ni - 1];
                if allow_insert(prev, fill, sz) {
                    let off = prev.end();
                    prev.insert(off, elem);
                    return;
                }
            }
            let mut n = Node::new();
            n.insert(lp::HDR, elem);
            self.nodes.insert(ni, n);
            return;
        }
        // A full node, inserting inside it: split it at the insertion point.
        let end = node.end();
        let right = node.slice(at, end, count - li);
        node.remove(at, end, count - li);
        node.seal();
        self.nodes.insert(ni + 1, right);
        let left = &mut self.nodes[ni];
        if allow_insert(left, fill, sz) {
            let off = left.end();
            left.insert(off, elem);
        } else if allow_insert(&self.nodes[ni + 1], fill, sz) {
            self.nodes[ni + 1].insert(lp::HDR, elem);
        } else {
            let mut n = Node::new();
            n.insert(lp::HDR, elem);
            self.nodes.insert(ni + 1, n);
        }
    }

    /// Removes up to `limit` elements equal to `elem` (0 = all), scanning from
    /// the head or (`from_tail`) from the tail; returns how many (LREM).
    pub fn remove_matching(&mut self, elem: &[u8], limit: usize, from_tail: bool) -> usize {
        let m = Matcher::new(elem);
        let mut removed = 0;
        let order: Vec<usize> = if from_tail {
            (0..self.nodes.len()).rev().collect()
        } else {
            (0..self.nodes.len()).collect()
        };
        let mut emptied = Vec::new();
        for ni in order {
            if limit != 0 && removed == limit {
                break;
            }
            let node = &mut self.nodes[ni];
            // Entry spans of this node, in list order.
            let mut spans = Vec::with_capacity(node.count as usize);
            let mut off = lp::HDR;
            for _ in 0..node.count {
                let (e, next) = lp::entry(&node.lp, off);
                spans.push((off, next, m.matches(e)));
                off = next;
            }
            let mut drop = vec![false; spans.len()];
            let mut any = false;
            let idx: Box<dyn Iterator<Item = usize>> = if from_tail {
                Box::new((0..spans.len()).rev())
            } else {
                Box::new(0..spans.len())
            };
            for i in idx {
                if limit != 0 && removed == limit {
                    break;
                }
                if spans[i].2 {
                    drop[i] = true;
                    removed += 1;
                    any = true;
                }
            }
            if !any {
                continue;
            }
            // Compact the node: keep the entries not dropped, in order.
            let mut w = lp::HDR;
            let mut kept = 0u32;
            for (i, &(a, b, _)) in spans.iter().enumerate() {
                if drop[i] {
                    continue;
                }
                node.lp.copy_within(a..b, w);
                w += b - a;
                kept += 1;
            }
            let dropped = node.count - kept;
            let end = node.end();
            node.lp.copy_within(end..end + 1, w);
            node.lp.truncate(w + 1);
            node.count = kept;
            lp::fix_header(&mut node.lp, kept);
            self.len -= dropped as usize;
            if kept == 0 {
                emptied.push(ni);
            }
        }
        emptied.sort_unstable();
        for ni in emptied.into_iter().rev() {
            self.nodes.remove(ni);
        }
        removed
    }

    /// The OBJECT ENCODING name (Redis 7.0 lists are always quicklists).
    pub fn encoding_name(&self) -> &'static str {
        "quicklist"
    }

    /// Approximate heap bytes used.
    pub fn heap_size(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.nodes.iter().map(|n| n.lp.capacity()).sum::<usize>()
    }
}

/// An iterator over list elements from a position, in either direction.
pub struct Iter<'a> {
    list: &'a ListValue,
    node: usize,
    off: usize,
    left: usize,
    rev: bool,
}

impl<'a> Iterator for Iter<'a> {
    type Item = Elem<'a>;

    #[inline]
    fn next(&mut self) -> Option<Elem<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let n = &self.list.nodes[self.node];
        let (e, next) = lp::entry(&n.lp, self.off);
        if self.left > 0 {
            if self.rev {
                if self.off == lp::HDR {
                    self.node -= 1;
                    self.off = self.list.nodes[self.node].last();
                } else {
                    self.off = lp::prev(&n.lp, self.off);
                }
            } else if next == n.end() {
                self.node += 1;
                self.off = lp::HDR;
            } else {
                self.off = next;
            }
        }
        Some(e)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn to_vecs(l: &ListValue) -> Vec<Vec<u8>> {
        l.iter(0).map(|e| e.to_vec()).collect()
    }

    fn check(l: &ListValue, model: &VecDeque<Vec<u8>>) {
        assert_eq!(l.len(), model.len());
        assert_eq!(
            l.nodes.iter().map(|n| n.count as usize).sum::<usize>(),
            l.len
        );
        assert!(l.nodes.iter().all(|n| n.count > 0));
        for n in &l.nodes {
            assert_eq!(
                u32::from_le_bytes(n.lp[..4].try_into().unwrap()) as usize,
                n.lp.len()
            );
            assert_eq!(*n.lp.last().unwrap(), lp::EOF);
        }
        let fwd = to_vecs(l);
        assert_eq!(fwd, model.iter().cloned().collect::<Vec<_>>());
        if !model.is_empty() {
            let rev: Vec<Vec<u8>> = l.iter_at(l.len() - 1, true).map(|e| e.to_vec()).collect();
            let mut m: Vec<Vec<u8>> = model.iter().cloned().collect();
            m.reverse();
            assert_eq!(rev, m);
        }
    }

    #[test]
    fn entries_round_trip_every_encoding() {
        let vals: Vec<Vec<u8>> = [
            "0",
            "127",
            "128",
            "-1",
            "-4096",
            "4095",
            "4096",
            "-32768",
            "32767",
            "-8388608",
            "8388607",
            "8388608",
            "-2147483648",
            "2147483647",
            "2147483648",
            "-9223372036854775808",
            "9223372036854775807",
            "007",
            "-0",
            "",
            "abc",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .chain([
            vec![b'x'; 63],
            vec![b'y'; 64],
            vec![b'z'; 4095],
            vec![b'w'; 4096],
        ])
        .chain([vec![b'q'; 20000]])
        .collect();
        let mut l = ListValue::with_fill(-5);
        let mut model = VecDeque::new();
        for v in &vals {
            l.push(End::Tail, v);
            model.push_back(v.clone());
            l.push(End::Head, v);
            model.push_front(v.clone());
        }
        check(&l, &model);
        for (i, v) in model.iter().enumerate() {
            assert_eq!(l.get(i as i64).unwrap().to_vec(), *v);
        }
        while let Some(v) = l.pop(End::Tail) {
            assert_eq!(Some(v), model.pop_back());
        }
        assert!(model.is_empty());
    }

    #[test]
    fn nodes_are_redis_listpacks() {
        // The listpack inside Redis 7.0.15's DUMP of this list (rdbcompression no).
        let expect = "82000000 0c00 816102 0501 d00002 cfff02 f1008003 f2e0930404 f200008004 \
                      f3ffffff7f05 f4ffffffffffffff7f09 e046{x} 48 8330303704 822d3003 ff";
        let expect = expect
            .replace("{x}", &"78".repeat(70))
            .replace([' ', '\\', '\n'], "");
        let mut l = ListValue::new();
        let x70 = "x".repeat(70);
        for e in [
            "a",
            "5",
            "-4096",
            "4095",
            "-32768",
            "300000",
            "-8388608",
            "2147483647",
            "9223372036854775807",
            &x70,
            "007",
            "-0",
        ] {
            l.push(End::Tail, e.as_bytes());
        }
        let got: String = l
            .listpacks()
            .next()
            .unwrap()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(got, expect);
    }

    /// (nodes, total listpack bytes) of a list built by pushing `elems`.
    fn shape(fill: i64, end: End, elems: impl Iterator<Item = String>) -> (usize, usize) {
        let mut l = ListValue::with_fill(fill);
        for e in elems {
            l.push(end, e.as_bytes());
        }
        (l.node_count(), l.listpacks().map(|p| p.len()).sum())
    }

    #[test]
    fn nodes_split_like_quicklist() {
        // ql_nodes and ql_uncompressed_size from Redis 7.0.15's DEBUG OBJECT.
        let e = |n: usize, f: fn(usize) -> String| (1..=n).map(f);
        assert_eq!(
            shape(-2, End::Tail, e(1100, |i| format!("e:{i}"))),
            (1, 7700)
        );
        assert_eq!(
            shape(-2, End::Tail, e(1200, |i| format!("e:{i}"))),
            (2, 8507)
        );
        let abc = |i| format!("abcdefghij{i}");
        assert_eq!(shape(-2, End::Tail, e(1000, abc)), (2, 14907));
        assert_eq!(shape(-2, End::Tail, e(1200, abc)), (3, 18114));
        assert_eq!(shape(-2, End::Tail, e(1200, |i| i.to_string())), (1, 3480));
        let z = |n: usize, m: usize| (0..n).map(move |i| "q".repeat(i % m));
        assert_eq!(shape(-2, End::Head, z(3000, 97)), (19, 150834));
        assert_eq!(shape(7, End::Head, z(3000, 2000)), (488, 2513536));
        assert_eq!(shape(4, End::Tail, (0..10).map(|i| format!("v{i}"))).0, 3);
        assert_eq!(
            shape(1000, End::Tail, (0..5000).map(|i| format!("v{i}"))).0,
            5
        );
        let x = |i: usize| "x".repeat(i % 300);
        assert_eq!(shape(-1, End::Tail, (0..5000).map(x)), (189, 755593));
        assert_eq!(
            shape(-5, End::Tail, (0..50000).map(|i| i.to_string())),
            (4, 213036)
        );
    }

    #[test]
    fn random_ops_match_a_model() {
        let mut x = 0x9e3779b97f4a7c15u64;
        let mut rnd = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n.max(1)
        };
        for fill in [1i64, 3, 5, -1, -2] {
            let mut l = ListValue::with_fill(fill);
            let mut model: VecDeque<Vec<u8>> = VecDeque::new();
            for _ in 0..4000 {
                let v = match rnd(4) {
                    0 => rnd(300).to_string().into_bytes(),
                    1 => vec![b'a' + rnd(3) as u8; rnd(100) as usize],
                    _ => format!("s{}", rnd(20)).into_bytes(),
                };
                match rnd(10) {
                    0 | 1 => {
                        l.push(End::Head, &v);
                        model.push_front(v);
                    }
                    2 | 3 => {
                        l.push(End::Tail, &v);
                        model.push_back(v);
                    }
                    4 => assert_eq!(l.pop(End::Head), model.pop_front()),
                    5 => assert_eq!(l.pop(End::Tail), model.pop_back()),
                    6 => {
                        let pivot = format!("s{}", rnd(20)).into_bytes();
                        let after = rnd(2) == 0;
                        let pos = model.iter().position(|e| *e == pivot);
                        assert_eq!(l.insert_at_pivot(&pivot, &v, after), pos.is_some());
                        if let Some(p) = pos {
                            model.insert(p + after as usize, v);
                        }
                    }
                    7 => {
                        let limit = rnd(3) as usize;
                        let tail = rnd(2) == 0;
                        let target = format!("s{}", rnd(20)).into_bytes();
                        let mut removed = 0;
                        let idx: Vec<usize> = if tail {
                            (0..model.len()).rev().collect()
                        } else {
                            (0..model.len()).collect()
                        };
                        let mut drop = vec![];
                        for i in idx {
                            if limit != 0 && removed == limit {
                                break;
                            }
                            if model[i] == target {
                                drop.push(i);
                                removed += 1;
                            }
                        }
                        drop.sort_unstable();
                        for i in drop.into_iter().rev() {
                            model.remove(i);
                        }
                        assert_eq!(l.remove_matching(&target, limit, tail), removed);
                    }
                    8 => {
                        if !model.is_empty() {
                            let s = rnd(model.len() as u64) as usize;
                            let n = rnd(30) as usize;
                            l.delete_range(s, n);
                            let n = n.min(model.len() - s);
                            model.drain(s..s + n);
                        }
                    }
                    _ => {
                        if !model.is_empty() {
                            let i = rnd(model.len() as u64) as usize;
                            assert!(l.set(i as i64, &v));
                            model[i] = v;
                        }
                    }
                }
                check(&l, &model);
            }
        }
    }
}
