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

/// Compresses `input` exactly as Redis's lzf_compress does (same bytes out, so
/// DUMP payloads and RDB files match Redis's); None when the output would not
/// fit in `out_len` bytes (Redis asks for at most `len - 4` and stores the
/// string raw otherwise). A port of lzf_c.c step by step: `op` writes a
/// placeholder control byte for the literal run in progress.
pub fn compress(input: &[u8], out_len: usize) -> Option<Vec<u8>> {
    let in_end = input.len();
    if in_end == 0 || out_len == 0 {
        return None;
    }
    // Slack: the C code may write a run's control byte one past its checks.
    let mut out = vec![0u8; out_len + 4];
    let mut htab = vec![NONE; HSIZE];
    let (mut ip, mut op, mut lit) = (0usize, 1usize, 0usize);
    let mut hval = if in_end >= 2 { first(input, 0) } else { 0 };
    while ip + 2 < in_end {
        hval = next(hval, input, ip);
        let slot = idx(hval);
        let r = htab[slot];
        htab[slot] = ip;
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
                return None;
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
            htab[idx(hval)] = ip;
            ip += 1;
            hval = next(hval, input, ip);
            htab[idx(hval)] = ip;
            ip += 1;
        } else {
            if op >= out_len {
                return None;
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
        return None;
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
    Some(out)
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
    fn corrupt_input_is_an_error() {
        assert!(decompress(&[5, b'a'], 6).is_err());
        assert!(decompress(&[0x20, 0x05], 10).is_err());
        assert!(decompress(&[0, b'a'], 2).is_err());
    }
}
