//! LZF compression as liblzf (lzf_c.c / lzf_d.c) encodes it, for RDB strings.
//!
//! Format: a control byte `c < 32` is followed by `c + 1` literal bytes; any
//! other control byte is a back reference of length `(c >> 5) + 2` (an extra
//! length byte follows when `c >> 5 == 7`) at distance `((c & 0x1f) << 8 | next) + 1`.

/// Largest literal run one control byte describes.
const MAX_LIT: usize = 32;
/// Largest back-reference distance.
const MAX_OFF: usize = 1 << 13;
/// Largest back-reference length.
const MAX_REF: usize = (1 << 8) + (1 << 3);
/// Hash table size (log2), as Redis's lzfP.h sets HLOG.
const HLOG: u32 = 16;
/// Hash table slots.
const HSIZE: usize = 1 << HLOG;
/// An empty hash table slot.
const NONE: usize = usize::MAX;

/// liblzf's FRST: the first two bytes at `i`.
#[inline]
fn first(b: &[u8], i: usize) -> u32 {
    (u32::from(b[i]) << 8) | u32::from(b[i + 1])
}

/// liblzf's NEXT: shifts in the third byte at `i`.
#[inline]
fn next(h: u32, b: &[u8], i: usize) -> u32 {
    (h << 8) | u32::from(b[i + 2])
}

/// liblzf's IDX with VERY_FAST (Redis's setting).
#[inline]
fn idx(h: u32) -> usize {
    ((h >> (3 * 8 - HLOG)).wrapping_sub(h.wrapping_mul(5)) as usize) & (HSIZE - 1)
}

/// The compressor's hash table: input position last seen per hash of three bytes.
trait HashTable {
    /// The position stored in `slot`, or `NONE`.
    fn get(&self, slot: usize) -> usize;
    /// Stores `pos` in `slot`.
    fn set(&mut self, slot: usize, pos: usize);
}

/// A table filled with `NONE` for one call (inputs too long for `Stamped`).
struct Plain(Vec<usize>);

impl HashTable for Plain {
    #[inline]
    fn get(&self, slot: usize) -> usize {
        self.0[slot]
    }
    #[inline]
    fn set(&mut self, slot: usize, pos: usize) {
        self.0[slot] = pos;
    }
}

/// A per-thread table reused across calls. Filling 64 Ki slots for every
/// string (512 KiB, as the first port did) cost ~15 µs per key and was most
/// of a snapshot's time; instead each slot carries the stamp of the call that
/// wrote it in its high half, and a slot with another stamp reads as empty,
/// so a new call starts with an empty table by bumping the stamp.
struct Stamped {
    /// `stamp << 32 | position`.
    slots: Box<[u64]>,
    /// The current call's stamp (never 0: 0 is a cleared slot's).
    stamp: u32,
}

impl Stamped {
    /// Starts a call: every slot reads as empty from now on.
    fn begin(&mut self) {
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            // Once per 2^32 calls: clear for real so old stamps cannot come back.
            self.slots.fill(0);
            self.stamp = 1;
        }
    }
}

impl HashTable for Stamped {
    #[inline]
    fn get(&self, slot: usize) -> usize {
        let e = self.slots[slot];
        if (e >> 32) as u32 == self.stamp {
            (e & 0xffff_ffff) as usize
        } else {
            NONE
        }
    }
    #[inline]
    fn set(&mut self, slot: usize, pos: usize) {
        // Callers only use `Stamped` for inputs shorter than 2^32 bytes.
        self.slots[slot] = (u64::from(self.stamp) << 32) | pos as u64;
    }
}

thread_local! {
    /// This thread's reusable hash table (allocated on first use).
    static TABLE: std::cell::RefCell<Option<Stamped>> = const { std::cell::RefCell::new(None) };
}

/// Compresses `input` exactly as Redis's lzf_compress does (same bytes out, so
/// DUMP payloads and RDB files match Redis's); None when the output would not
/// fit in `out_len` bytes (Redis asks for at most `len - 4` and stores the
/// string raw otherwise).
pub fn compress(input: &[u8], out_len: usize) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    compress_into(input, out_len, &mut out).then_some(out)
}

/// As [`compress`], into `out` (replacing its contents; its capacity is
/// reused); false, with `out` in an unspecified state, when the output would
/// not fit in `out_len` bytes.
pub fn compress_into(input: &[u8], out_len: usize, out: &mut Vec<u8>) -> bool {
    if input.is_empty() || out_len == 0 {
        return false;
    }
    if input.len() < u32::MAX as usize {
        let done = TABLE.with(|t| {
            let Ok(mut t) = t.try_borrow_mut() else {
                return None;
            };
            let t = t.get_or_insert_with(|| Stamped {
                slots: vec![0u64; HSIZE].into_boxed_slice(),
                stamp: 0,
            });
            t.begin();
            Some(compress_with(input, out_len, out, t))
        });
        if let Some(ok) = done {
            return ok;
        }
    }
    compress_with(input, out_len, out, &mut Plain(vec![NONE; HSIZE]))
}

/// A port of lzf_c.c step by step: `op` writes a placeholder control byte
/// for the literal run in progress.
fn compress_with(
    input: &[u8],
    out_len: usize,
    out: &mut Vec<u8>,
    htab: &mut impl HashTable,
) -> bool {
    let in_end = input.len();
    // Slack: the C code may write a run's control byte one past its checks.
    out.clear();
    out.resize(out_len + 4, 0);
    let (mut ip, mut op, mut lit) = (0usize, 1usize, 0usize);
    let mut hval = if in_end >= 2 { first(input, 0) } else { 0 };
    while ip + 2 < in_end {
        hval = next(hval, input, ip);
        let slot = idx(hval);
        let r = htab.get(slot);
        htab.set(slot, ip);
        let matched = r != NONE
            && ip - r - 1 < MAX_OFF
            && ip + 4 < in_end
            && r > 0
            && input[r..r + 3] == input[ip..ip + 3];
        if matched {
            let off = ip - r - 1;
            let mut len = 2usize;
            let maxlen = (in_end - ip - len).min(MAX_REF);
            out[op - lit - 1] = (lit as u8).wrapping_sub(1);
            if lit == 0 {
                op -= 1;
            }
            if op + 3 + 1 >= out_len {
                return false;
            }
            // The C code compares 16 bytes unrolled (no length check) when
            // maxlen > 16, then one at a time up to maxlen.
            let mut done = false;
            if maxlen > 16 {
                for _ in 0..16 {
                    len += 1;
                    if input[r + len] != input[ip + len] {
                        done = true;
                        break;
                    }
                }
            }
            if !done {
                loop {
                    len += 1;
                    if !(len < maxlen && input[r + len] == input[ip + len]) {
                        break;
                    }
                }
            }
            len -= 2;
            ip += 1;
            if len < 7 {
                out[op] = ((off >> 8) + (len << 5)) as u8;
                op += 1;
            } else {
                out[op] = ((off >> 8) + (7 << 5)) as u8;
                out[op + 1] = (len - 7) as u8;
                op += 2;
            }
            out[op] = off as u8;
            op += 1;
            lit = 0;
            op += 1;
            ip += len + 1;
            if ip + 2 >= in_end {
                break;
            }
            // VERY_FAST: index the last two positions of the match.
            ip -= 2;
            hval = first(input, ip);
            hval = next(hval, input, ip);
            htab.set(idx(hval), ip);
            ip += 1;
            hval = next(hval, input, ip);
            htab.set(idx(hval), ip);
            ip += 1;
        } else {
            if op >= out_len {
                return false;
            }
            lit += 1;
            out[op] = input[ip];
            op += 1;
            ip += 1;
            if lit == MAX_LIT {
                out[op - lit - 1] = (lit - 1) as u8;
                lit = 0;
                op += 1;
            }
        }
    }
    if op + 3 > out_len {
        return false;
    }
    while ip < in_end {
        lit += 1;
        out[op] = input[ip];
        op += 1;
        ip += 1;
        if lit == MAX_LIT {
            out[op - lit - 1] = (lit - 1) as u8;
            lit = 0;
            op += 1;
        }
    }
    out[op - lit - 1] = (lit as u8).wrapping_sub(1);
    if lit == 0 {
        op -= 1;
    }
    out.truncate(op);
    true
}

/// Decompresses `input` into exactly `out_len` bytes; an error names the problem.
pub fn decompress(input: &[u8], out_len: usize) -> Result<Vec<u8>, &'static str> {
    let mut out: Vec<u8> = Vec::with_capacity(out_len);
    let mut i = 0usize;
    while i < input.len() {
        let ctrl = input[i] as usize;
        i += 1;
        if ctrl < 32 {
            let run = ctrl + 1;
            if i + run > input.len() {
                return Err("LZF literal run past the end of the input");
            }
            if out.len() + run > out_len {
                return Err("LZF output longer than announced");
            }
            out.extend_from_slice(&input[i..i + run]);
            i += run;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                let Some(&b) = input.get(i) else {
                    return Err("LZF back reference cut short");
                };
                len += b as usize;
                i += 1;
            }
            let Some(&b) = input.get(i) else {
                return Err("LZF back reference cut short");
            };
            i += 1;
            let off = ((ctrl & 0x1f) << 8 | b as usize) + 1;
            let len = len + 2;
            if off > out.len() {
                return Err("LZF back reference before the start of the output");
            }
            if out.len() + len > out_len {
                return Err("LZF output longer than announced");
            }
            let start = out.len() - off;
            // Byte by byte: the source may overlap what is being written.
            for k in 0..len {
                let b = out[start + k];
                out.push(b);
            }
        }
    }
    if out.len() != out_len {
        return Err("LZF output shorter than announced");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_bytes_as_redis() {
        // Redis 7.0.15's DUMP of SET k "abc" x 13 (rdbcompression yes): the
        // LZF part. liblzf never matches at offset 0 and leaves 2 literals.
        let input = b"abc".repeat(13);
        let want = [3, b'a', b'b', b'c', b'a', 224, 24, 2, 1, b'b', b'c'];
        assert_eq!(compress(&input, input.len() - 4).unwrap(), want);
        assert_eq!(decompress(&want, input.len()).unwrap(), input);
        // Too little room: no output, as lzf_compress returns 0.
        assert_eq!(compress(&input, 8), None);
    }

    #[test]
    fn round_trips() {
        let mut cases: Vec<Vec<u8>> = vec![
            vec![b'a'; 1000],
            b"abcabcabcabcabcabcabcabcabcabcabcabcxyz".to_vec(),
            (0..5000u32).map(|i| (i % 251) as u8).collect(),
        ];
        let mut x = 7u64;
        let noise: Vec<u8> = (0..3000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 4) as u8 + b'a'
            })
            .collect();
        cases.push(noise);
        for c in cases {
            let z = compress(&c, c.len() - 4).expect("compressible");
            assert_eq!(decompress(&z, c.len()).unwrap(), c);
        }
        // Incompressible data does not fit in len - 4.
        let mut y = 1u64;
        let rnd: Vec<u8> = (0..200)
            .map(|_| {
                y = y
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (y >> 56) as u8
            })
            .collect();
        assert!(compress(&rnd, rnd.len() - 4).is_none());
    }

    #[test]
    fn reused_table_gives_the_bytes_of_a_fresh_one() {
        // Strings compressed one after another on one thread see the slots
        // of the previous ones: they must read as empty, also across a wrap
        // of the stamp.
        let mut x = 99u64;
        let mut inputs: Vec<Vec<u8>> = Vec::new();
        for n in 0..300usize {
            let len = 21 + (n * 37) % 700;
            inputs.push(
                (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        b"abcab"[(x % 5) as usize]
                    })
                    .collect(),
            );
        }
        let fresh = |s: &[u8]| {
            let mut out = Vec::new();
            compress_with(s, s.len() - 4, &mut out, &mut Plain(vec![NONE; HSIZE])).then_some(out)
        };
        for round in 0..2 {
            if round == 1 {
                TABLE.with(|t| {
                    if let Some(t) = t.borrow_mut().as_mut() {
                        t.stamp = u32::MAX - 100;
                    }
                });
            }
            for s in &inputs {
                let got = compress(s, s.len() - 4);
                assert_eq!(got, fresh(s));
                if let Some(z) = got {
                    assert_eq!(decompress(&z, s.len()).unwrap(), *s);
                }
            }
        }
        TABLE.with(|t| assert!(t.borrow().as_ref().is_some_and(|t| t.stamp < 1000)));
    }

    #[test]
    fn corrupt_input_is_an_error() {
        assert!(decompress(&[5, b'a'], 6).is_err());
        assert!(decompress(&[0x20, 0x05], 10).is_err());
        assert!(decompress(&[0, b'a'], 2).is_err());
    }
}
