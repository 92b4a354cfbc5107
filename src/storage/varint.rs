//! LEB128-style length prefixes (7 bits per byte, low first) shared by the
//! compact encodings: records, hashtable hash entries, listpack zsets.

/// Reads a varint at the start of `b`: (value, bytes read).
#[inline]
pub fn read(b: &[u8]) -> (usize, usize) {
    let mut v = 0usize;
    let mut shift = 0;
    for (i, &byte) in b.iter().enumerate() {
        v |= ((byte & 0x7f) as usize) << shift;
        if byte & 0x80 == 0 {
            return (v, i + 1);
        }
        shift += 7;
    }
    (v, b.len())
}

/// Bytes the varint of `v` takes.
#[inline]
pub fn len(mut v: usize) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// Appends the varint of `v`.
#[inline]
pub fn push(out: &mut Vec<u8>, mut v: usize) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Writes the varint of `v` at the start of `out`; returns the bytes written.
#[inline]
pub fn write(out: &mut [u8], mut v: usize) -> usize {
    let mut i = 0;
    while v >= 0x80 {
        out[i] = (v as u8) | 0x80;
        v >>= 7;
        i += 1;
    }
    out[i] = v as u8;
    i + 1
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trips_at_the_byte_boundaries() {
        for v in [0, 1, 127, 128, 16383, 16384, usize::MAX >> 1] {
            let mut a = Vec::new();
            super::push(&mut a, v);
            let mut b = [0u8; 10];
            let n = super::write(&mut b, v);
            assert_eq!(&b[..n], &a[..]);
            assert_eq!(super::len(v), n);
            assert_eq!(super::read(&a), (v, n));
        }
    }
}
