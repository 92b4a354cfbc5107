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
/// Hash table size (log2), as liblzf's default HLOG.
const HLOG: u32 = 16;

#[inline]
fn hash3(b: &[u8]) -> usize {
    let v = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
    (v.wrapping_mul(2654435761) >> (32 - HLOG)) as usize
}

/// Compresses `input`; None when the output would not fit in `max_out` bytes
/// (Redis asks for at most `len - 4`, and stores the string raw otherwise).
pub fn compress(input: &[u8], max_out: usize) -> Option<Vec<u8>> {
    let n = input.len();
    if n < 4 {
        return None;
    }
    let mut out: Vec<u8> = Vec::with_capacity(max_out);
    let mut table = vec![0u32; 1 << HLOG];
    // Start of the pending literal run (its control byte is written when it ends).
    let mut lit_start = 0usize;
    let mut i = 0usize;
    let flush_literals = |out: &mut Vec<u8>, from: usize, to: usize| {
        let mut s = from;
        while s < to {
            let run = (to - s).min(MAX_LIT);
            out.push((run - 1) as u8);
            out.extend_from_slice(&input[s..s + run]);
            s += run;
        }
    };
    while i + 2 < n {
        let h = hash3(&input[i..]);
        let cand = table[h] as usize;
        table[h] = (i + 1) as u32;
        if cand > 0 {
            let r = cand - 1;
            let off = i - r;
            if off > 0
                && off <= MAX_OFF
                && input[r] == input[i]
                && input[r + 1] == input[i + 1]
                && input[r + 2] == input[i + 2]
            {
                let maxlen = (n - i).min(MAX_REF);
                let mut len = 3;
                while len < maxlen && input[r + len] == input[i + len] {
                    len += 1;
                }
                flush_literals(&mut out, lit_start, i);
                let l = len - 2;
                let o = off - 1;
                if l < 7 {
                    out.push(((l << 5) | (o >> 8)) as u8);
                } else {
                    out.push(((7 << 5) | (o >> 8)) as u8);
                    out.push((l - 7) as u8);
                }
                out.push(o as u8);
                if out.len() > max_out {
                    return None;
                }
                // Index the positions inside the match cheaply (only the last two).
                let end = i + len;
                let mut j = end.saturating_sub(2).max(i + 1);
                while j < end && j + 2 < n {
                    table[hash3(&input[j..])] = (j + 1) as u32;
                    j += 1;
                }
                i = end;
                lit_start = i;
                continue;
            }
        }
        i += 1;
        if out.len() + (i - lit_start) + (i - lit_start) / MAX_LIT + 1 > max_out {
            return None;
        }
    }
    flush_literals(&mut out, lit_start, n);
    (out.len() <= max_out).then_some(out)
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
