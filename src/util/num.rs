//! Number parsing and formatting exactly as Redis does it (string2ll, %.17g, long double INCRBYFLOAT).

/// Parses a signed 64-bit integer with Redis's strict string2ll rules.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let (neg, digits) = if s[0] == b'-' {
        (true, &s[1..])
    } else {
        (false, s)
    };
    if digits.is_empty() || (digits[0] == b'0' && (digits.len() > 1 || neg)) {
        return if digits == b"0" && !neg {
            Some(0)
        } else {
            None
        };
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    if neg {
        if v > (i64::MAX as u64) + 1 {
            None
        } else {
            Some((v as i64).wrapping_neg())
        }
    } else if v > i64::MAX as u64 {
        None
    } else {
        Some(v as i64)
    }
}

/// Writes the decimal form of `n` into `buf` and returns it.
pub fn format_i64(n: i64, buf: &mut [u8; 24]) -> &[u8] {
    let mut i = buf.len();
    let neg = n < 0;
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if neg {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

/// Appends the decimal form of `n` to `out`.
#[inline]
pub fn push_i64(out: &mut Vec<u8>, n: i64) {
    let mut tmp = [0u8; 24];
    out.extend_from_slice(format_i64(n, &mut tmp));
}

/// Formats a double as Redis 7.0's addReplyDouble does (`%.17g`, `inf`, `-inf`).
pub fn format_double(d: f64, buf: &mut [u8; 64]) -> &[u8] {
    let _ = (d, buf);
    todo!("format_double: being written")
}
