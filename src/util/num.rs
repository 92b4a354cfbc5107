//! Number parsing and formatting exactly as Redis does it (string2ll, %.17g, long double INCRBYFLOAT).

use std::fmt::Write as _;
use std::os::raw::{c_char, c_int};

/// Parses a signed 64-bit integer with Redis's strict string2ll rules.
///
/// No sign but `-`, no spaces, no leading zeros (except "0" itself, and "-0" is rejected),
/// at most 20 bytes, and the value must fit in an `i64`.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    // string2ll rejects slen >= LONG_STR_SIZE (21).
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
///
/// Redis 7.0 uses snprintf("%.17g") here (fpconv_dtoa only arrived in 7.2). NaN never
/// reaches a reply in Redis; it is rendered as glibc would ("nan"/"-nan").
pub fn format_double(d: f64, buf: &mut [u8; 64]) -> &[u8] {
    if d.is_infinite() {
        let s: &[u8] = if d > 0.0 { b"inf" } else { b"-inf" };
        buf[..s.len()].copy_from_slice(s);
        return &buf[..s.len()];
    }
    let len = fmt_g17(d, buf);
    &buf[..len]
}

/// Formats a double as Redis util.c d2string (zset listpack scores and similar stored doubles).
///
/// `nan`, `inf`, `-inf`, `0`, `-0`; integral values in [-2^62, 2^62] (double2ll's range)
/// as plain integers; everything else `%.17g`.
pub fn d2string(d: f64, buf: &mut [u8; 64]) -> &[u8] {
    let special: Option<&[u8]> = if d.is_nan() {
        Some(b"nan")
    } else if d.is_infinite() {
        Some(if d < 0.0 { b"-inf" } else { b"inf" })
    } else if d == 0.0 {
        Some(if d.is_sign_negative() { b"-0" } else { b"0" })
    } else {
        None
    };
    if let Some(s) = special {
        buf[..s.len()].copy_from_slice(s);
        return &buf[..s.len()];
    }
    // double2ll: (double)(LLONG_MAX/2) rounds to exactly 2^62.
    const LIMIT: f64 = 4_611_686_018_427_387_904.0;
    if (-LIMIT..=LIMIT).contains(&d) && d.trunc() == d {
        let mut tmp = [0u8; 24];
        let s = format_i64(d as i64, &mut tmp);
        buf[..s.len()].copy_from_slice(s);
        return &buf[..s.len()];
    }
    let len = fmt_g17(d, buf);
    &buf[..len]
}

/// A `fmt::Write` into a fixed byte buffer, so formatting never allocates.
struct SliceWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl std::fmt::Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// C's `printf("%.17g", d)` for a finite or NaN double, written to the start of `out`.
///
/// Rust's `{:.16e}` yields the same correctly rounded 17 significant digits as glibc (both
/// round exact ties to even); this only re-lays them out with %g's rules: exponent form when
/// the exponent is < -4 or >= 17, trailing zeros (and a bare '.') removed.
fn fmt_g17(d: f64, out: &mut [u8; 64]) -> usize {
    let mut n = 0;
    if d.is_sign_negative() {
        out[0] = b'-';
        n = 1;
    }
    if d.is_nan() {
        out[n..n + 3].copy_from_slice(b"nan");
        return n + 3;
    }

    // "d.dddddddddddddddde<exp>": at most 1 + 1 + 16 + 1 + 4 = 23 bytes.
    let mut sci = [0u8; 32];
    let mut w = SliceWriter {
        buf: &mut sci,
        len: 0,
    };
    write!(w, "{:.16e}", d.abs()).expect("a double's %.16e form fits in 32 bytes");
    let sci_len = w.len;
    let mut digits = [0u8; 17];
    digits[0] = sci[0];
    digits[1..].copy_from_slice(&sci[2..18]);
    debug_assert_eq!(sci[18], b'e');
    let exp: i32 = std::str::from_utf8(&sci[19..sci_len])
        .ok()
        .and_then(|s| s.parse().ok())
        .expect("Rust's {:e} exponent is a plain integer");

    // Significant digits left once %g drops trailing zeros (at least one).
    let sig = digits.iter().rposition(|&c| c != b'0').map_or(1, |i| i + 1);

    if !(-4..17).contains(&exp) {
        out[n] = digits[0];
        n += 1;
        if sig > 1 {
            out[n] = b'.';
            n += 1;
            out[n..n + sig - 1].copy_from_slice(&digits[1..sig]);
            n += sig - 1;
        }
        out[n] = b'e';
        out[n + 1] = if exp < 0 { b'-' } else { b'+' };
        n += 2;
        let e = exp.unsigned_abs();
        if e >= 100 {
            out[n] = b'0' + (e / 100) as u8;
            n += 1;
        }
        out[n] = b'0' + (e / 10 % 10) as u8;
        out[n + 1] = b'0' + (e % 10) as u8;
        n += 2;
    } else if exp >= 0 {
        let int_len = exp as usize + 1;
        out[n..n + int_len].copy_from_slice(&digits[..int_len]);
        n += int_len;
        if sig > int_len {
            out[n] = b'.';
            n += 1;
            out[n..n + sig - int_len].copy_from_slice(&digits[int_len..sig]);
            n += sig - int_len;
        }
    } else {
        let zeros = (-exp - 1) as usize;
        out[n..n + 2].copy_from_slice(b"0.");
        n += 2;
        out[n..n + zeros].fill(b'0');
        n += zeros;
        out[n..n + sig].copy_from_slice(&digits[..sig]);
        n += sig;
    }
    n
}

/// Parses a double with Redis's string2d rules (ZADD scores, ZINCRBY, GEO, ...).
///
/// This is strtod's grammar: decimal or hex (`0x1p3`) floats, an optional sign, `inf`/
/// `infinity` in any case. Rejected: empty input, leading whitespace, trailing bytes, NaN, and
/// out-of-range values (overflow to ±inf, or underflow all the way to zero).
pub fn parse_f64(s: &[u8]) -> Option<f64> {
    // Fast path: Rust's parser is correctly rounded like glibc's strtod and accepts a subset
    // of its grammar; anything it refuses (hex floats, garbage) is settled by strtod itself.
    let Some(v) = std::str::from_utf8(s)
        .ok()
        .and_then(|t| t.parse::<f64>().ok())
    else {
        return parse_f64_strtod(s);
    };
    if v.is_nan() {
        return None;
    }
    if v.is_infinite() {
        // Only the literal "inf"/"infinity" may yield infinity; digits mean ERANGE overflow.
        return if s.iter().any(u8::is_ascii_digit) {
            None
        } else {
            Some(v)
        };
    }
    if v == 0.0 {
        // A nonzero mantissa that rounded to zero is ERANGE underflow, which Redis rejects.
        let mantissa_nonzero = s
            .iter()
            .take_while(|&&c| c != b'e' && c != b'E')
            .any(|c| (b'1'..=b'9').contains(c));
        if mantissa_nonzero {
            return None;
        }
    }
    Some(v)
}

/// Redis string2d via the C shim's strtod (used for inputs Rust's parser refuses).
#[cold]
fn parse_f64_strtod(s: &[u8]) -> Option<f64> {
    // strtod needs a NUL-terminated string; copy like an sds would hold it.
    let mut stack = [0u8; 128];
    let mut heap = Vec::new();
    let buf: &mut [u8] = if s.len() < stack.len() {
        &mut stack[..=s.len()]
    } else {
        heap.resize(s.len() + 1, 0);
        &mut heap
    };
    buf[..s.len()].copy_from_slice(s);
    buf[s.len()] = 0;
    let mut out = 0.0f64;
    // SAFETY: `buf` holds `s.len() + 1` initialized bytes with a NUL at index `s.len()`, so
    // strtod stops inside it; `out` is a valid, writable f64. The C function keeps no pointers.
    let ok = unsafe { percore_string2d(buf.as_ptr().cast::<c_char>(), s.len(), &mut out) };
    (ok != 0).then_some(out)
}

/// Redis's MAX_LONG_DOUBLE_CHARS: string2ld input limit and ld2string buffer size.
pub const MAX_LONG_DOUBLE_CHARS: usize = 5 * 1024;

/// A C `long double` (x87 80-bit extended on x86_64), opaque to Rust and handled by the C shim.
///
/// HINCRBYFLOAT checks in this order, each with its own error, so it composes these pieces
/// rather than calling [`incr_by_float`]: `LongDouble::parse(incr)` (else "ERR value is not a
/// valid float"), `is_finite()` (else "ERR value is NaN or Infinity"), the WRONGTYPE check,
/// the field's value via `parse` (else "ERR hash value is not a float"), `+`, `is_finite()`
/// (else "ERR increment would produce NaN or Infinity"), then `write_human`.
#[repr(C, align(16))]
#[derive(Clone, Copy)]
pub struct LongDouble([u8; 16]);

extern "C" {
    fn percore_string2ld(s: *const c_char, slen: usize, dp: *mut LongDouble) -> c_int;
    fn percore_string2d(s: *const c_char, slen: usize, dp: *mut f64) -> c_int;
    fn percore_ld_from_ll(v: i64, out: *mut LongDouble);
    fn percore_ld_add(a: *const LongDouble, b: *const LongDouble, out: *mut LongDouble);
    fn percore_ld_is_finite(v: *const LongDouble) -> c_int;
    fn percore_ld_to_double(v: *const LongDouble) -> f64;
    fn percore_ld_timeout_ms(v: *const LongDouble) -> i64;
    fn percore_ld2string_human(buf: *mut c_char, len: usize, v: *const LongDouble) -> usize;
}

// The FFI SAFETY arguments below rely on this: C static-asserts that `long double` has
// size <= 16 and alignment <= 16, and this type provides exactly 16 bytes aligned to 16.
const _: () = assert!(std::mem::size_of::<LongDouble>() == 16);
const _: () = assert!(std::mem::align_of::<LongDouble>() == 16);

impl LongDouble {
    /// Positive zero (all-zero bits in both x87 extended and IEEE quad layouts).
    pub const ZERO: LongDouble = LongDouble([0; 16]);

    /// Parses with Redis's string2ld rules: strtold, at most 5119 bytes, no leading space, no
    /// trailing bytes, no NaN, no overflow/underflow-to-zero; "inf" and hex floats are accepted.
    pub fn parse(s: &[u8]) -> Option<LongDouble> {
        let mut out = LongDouble::ZERO;
        // SAFETY: `s` is valid for `s.len()` bytes (C copies it into its own NUL-terminated
        // buffer after checking the length, reading nothing past `s.len()`); `out` is a
        // writable, 16-byte, 16-aligned slot, enough for a `long double` (see the asserts).
        let ok = unsafe { percore_string2ld(s.as_ptr().cast::<c_char>(), s.len(), &mut out) };
        (ok != 0).then_some(out)
    }

    /// The exact value of an integer (what Redis does for INT-encoded strings).
    pub fn from_i64(v: i64) -> LongDouble {
        let mut out = LongDouble::ZERO;
        // SAFETY: `out` is a writable slot large and aligned enough for a `long double`.
        unsafe { percore_ld_from_ll(v, &mut out) };
        out
    }

    /// False for NaN and ±infinity.
    pub fn is_finite(self) -> bool {
        // SAFETY: `self` is a live, aligned slot holding valid `long double` bits.
        unsafe { percore_ld_is_finite(&self) != 0 }
    }

    /// The nearest `f64`.
    pub fn to_f64(self) -> f64 {
        // SAFETY: `self` is a live, aligned slot holding valid `long double` bits.
        unsafe { percore_ld_to_double(&self) }
    }

    /// `(long long) ceill(self * 1000.0)` as Redis computes a blocking timeout in ms
    /// (LLONG_MIN when out of range, as x86-64 converts).
    pub fn timeout_ms(self) -> i64 {
        // SAFETY: `self` is a live, aligned slot holding valid `long double` bits.
        unsafe { percore_ld_timeout_ms(&self) }
    }

    /// Appends Redis's ld2string(LD_STR_HUMAN) form: "%.17Lf" minus trailing zeros and '.',
    /// with "-0" shown as "0" (what INCRBYFLOAT/HINCRBYFLOAT store and reply).
    pub fn write_human(self, out: &mut Vec<u8>) {
        // Almost every value fits in a small buffer; huge magnitudes (up to ~4950 digits)
        // retry with Redis's full MAX_LONG_DOUBLE_CHARS buffer.
        let mut small = [0u8; 128];
        // SAFETY: `small` is writable for `small.len()` bytes and C writes at most that many
        // (snprintf is bounded by `len`, the trim only shortens); `self` holds valid bits.
        let n = unsafe {
            percore_ld2string_human(small.as_mut_ptr().cast::<c_char>(), small.len(), &self)
        };
        if n > 0 {
            out.extend_from_slice(&small[..n]);
            return;
        }
        let mut big = vec![0u8; MAX_LONG_DOUBLE_CHARS];
        // SAFETY: as above, with `big` writable for `big.len()` bytes.
        let n =
            unsafe { percore_ld2string_human(big.as_mut_ptr().cast::<c_char>(), big.len(), &self) };
        out.extend_from_slice(&big[..n]);
    }
}

impl std::ops::Add for LongDouble {
    type Output = LongDouble;

    /// `self + other` rounded to long double precision, as Redis's `value += incr`.
    fn add(self, other: LongDouble) -> LongDouble {
        let mut out = LongDouble::ZERO;
        // SAFETY: both inputs were produced by the shim (or are ZERO), so they hold valid
        // `long double` bits; all three pointers are to distinct live 16-byte aligned slots.
        unsafe { percore_ld_add(&self, &other, &mut out) };
        out
    }
}

impl std::fmt::Debug for LongDouble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = Vec::new();
        self.write_human(&mut s);
        write!(f, "LongDouble({})", String::from_utf8_lossy(&s))
    }
}

/// True when `s` is a valid long double for Redis (string2ld).
pub fn parse_long_double_ok(s: &[u8]) -> bool {
    LongDouble::parse(s).is_some()
}

/// Why INCRBYFLOAT failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncrFloatError {
    /// The stored value or the increment is not a valid float: "ERR value is not a valid float".
    NotAFloat,
    /// The sum is NaN or infinite: "ERR increment would produce NaN or Infinity".
    NanOrInfinity,
}

/// INCRBYFLOAT: `current` (None for a missing key) plus `incr`, in long double, as Redis stores
/// and replies it.
pub fn incr_by_float(current: Option<&[u8]>, incr: &[u8]) -> Result<Vec<u8>, IncrFloatError> {
    let value = match current {
        None => LongDouble::ZERO,
        Some(s) => LongDouble::parse(s).ok_or(IncrFloatError::NotAFloat)?,
    };
    let incr = LongDouble::parse(incr).ok_or(IncrFloatError::NotAFloat)?;
    let sum = value + incr;
    if !sum.is_finite() {
        return Err(IncrFloatError::NanOrInfinity);
    }
    let mut out = Vec::with_capacity(24);
    sum.write_human(&mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(d: f64) -> String {
        let mut b = [0u8; 64];
        String::from_utf8(format_double(d, &mut b).to_vec()).unwrap()
    }

    fn d2s(d: f64) -> String {
        let mut b = [0u8; 64];
        String::from_utf8(d2string(d, &mut b).to_vec()).unwrap()
    }

    fn incr(cur: Option<&str>, by: &str) -> Result<String, IncrFloatError> {
        incr_by_float(cur.map(str::as_bytes), by.as_bytes()).map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn parse_i64_matches_string2ll() {
        // Cases from util.c's test_string2ll plus edges.
        let ok: &[(&str, i64)] = &[
            ("0", 0),
            ("1", 1),
            ("-1", -1),
            ("99", 99),
            ("-99", -99),
            ("9223372036854775807", i64::MAX),
            ("-9223372036854775808", i64::MIN),
        ];
        for &(s, v) in ok {
            assert_eq!(parse_i64(s.as_bytes()), Some(v), "{s}");
        }
        for s in [
            "",
            "+1",
            " 1",
            "1 ",
            "01",
            "-0",
            "-01",
            "00",
            "-",
            "1a",
            "a1",
            "1.0",
            "1e3",
            "9223372036854775808",
            "-9223372036854775809",
            "18446744073709551616",
            "99999999999999999999",
            "-99999999999999999999",
            "000000000000000000001",
            "1\0",
        ] {
            assert_eq!(parse_i64(s.as_bytes()), None, "{s:?}");
        }
    }

    #[test]
    fn format_i64_roundtrip() {
        let mut b = [0u8; 24];
        for v in [0, 1, -1, 42, -42, i64::MAX, i64::MIN, 1_000_000] {
            assert_eq!(format_i64(v, &mut b), v.to_string().as_bytes());
        }
        let mut out = b"x".to_vec();
        push_i64(&mut out, -7);
        assert_eq!(out, b"x-7");
    }

    #[test]
    fn format_double_matches_redis_replies() {
        // ZADD z <input> m; ZSCORE z m on redis-server 7.0.15 (skiplist encoding for -0).
        let cases: &[(f64, &str)] = &[
            (0.1, "0.10000000000000001"),
            (1.0, "1"),
            (1e20, "1e+20"),
            (-0.0, "-0"),
            (0.0, "0"),
            (3.0, "3"),
            (1.5, "1.5"),
            (123456789.123, "123456789.123"),
            (1e-5, "1.0000000000000001e-05"),
            (0.0001, "0.0001"),
            (1e16, "10000000000000000"),
            (1e17, "1e+17"),
            (12345678901234567890.0, "1.2345678901234567e+19"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "4.9406564584124654e-324"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (16.0, "16"),
            (0.25, "0.25"),
            (100000.0, "100000"),
            (1.1, "1.1000000000000001"),
            (2.5e-7, "2.4999999999999999e-07"),
            (-12.5, "-12.5"),
            (123456789012345.0 + 0.625, "123456789012345.62"), // exact tie: rounds half to even
            (0.30000000000000004, "0.30000000000000004"),
            (1e15, "1000000000000000"),
            (9007199254740992.0, "9007199254740992"),
            (4611686018427387904.0, "4.6116860184273879e+18"),
            (1e21, "1e+21"),
            (0.000123, "0.00012300000000000001"),
        ];
        for &(d, want) in cases {
            assert_eq!(fmt(d), want, "{d:e}");
        }
        // ZINCRBY replies go through the same path.
        assert_eq!(fmt(0.1 + 0.2), "0.30000000000000004");
    }

    /// glibc's `snprintf("%.17g")`, the reference Redis 7.0 calls.
    fn libc_g17(d: f64) -> String {
        let mut b = [0u8; 64];
        // SAFETY: `b` is writable for 64 bytes and snprintf writes at most that many (NUL
        // included); the format is a NUL-terminated literal taking exactly one double.
        let n = unsafe { libc::snprintf(b.as_mut_ptr().cast(), b.len(), c"%.17g".as_ptr(), d) };
        String::from_utf8(b[..n as usize].to_vec()).unwrap()
    }

    #[test]
    fn format_double_matches_glibc_on_many_values() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..200_000u64 {
            let d = match i % 4 {
                0 => f64::from_bits(next()),
                1 => (next() >> (next() % 64)) as f64 / (1u64 << (next() % 60)) as f64,
                2 => (next() % 1_000_000) as f64 / 1000.0,
                _ => -((next() % 10_000_000) as f64) * 1e-9,
            };
            if d.is_infinite() {
                continue;
            }
            assert_eq!(fmt(d), libc_g17(d), "{:#x}", d.to_bits());
        }
        // Exact decimal ties at the 17th digit.
        for k in 0..10 {
            for m in [1u64, 3, 5, 7, 9, 15] {
                let d = 123456789012345.0 + m as f64 / (1u64 << k) as f64;
                assert_eq!(fmt(d), libc_g17(d));
            }
        }
    }

    #[test]
    fn d2string_matches_redis() {
        // Outputs of util.c d2string from the Redis 7.0.15 source.
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "-0"),
            (1.0, "1"),
            (-1.0, "-1"),
            (0.1, "0.10000000000000001"),
            (1.5, "1.5"),
            (-2.5, "-2.5"),
            (100.0, "100"),
            (1e15, "1000000000000000"),
            (1e17, "100000000000000000"),
            (4503599627370496.0, "4503599627370496"),
            (4503599627370497.0, "4503599627370497"),
            (4611686018427387904.0, "4611686018427387904"),
            (-4611686018427387904.0, "-4611686018427387904"),
            (4611686018427388928.0, "4.6116860184273889e+18"),
            (-4611686018427388928.0, "-4.6116860184273889e+18"),
            (1e20, "1e+20"),
            (1e-5, "1.0000000000000001e-05"),
            (1.1, "1.1000000000000001"),
            (f64::NAN, "nan"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "4.9406564584124654e-324"),
            (123456789.0, "123456789"),
            (-123456789.5, "-123456789.5"),
        ];
        for &(d, want) in cases {
            assert_eq!(d2s(d), want, "{d:e}");
        }
    }

    #[test]
    fn parse_f64_matches_zadd() {
        // Accepted by ZADD on redis-server 7.0.15 (value = what ZSCORE then printed).
        let ok: &[(&str, f64)] = &[
            ("0.1", 0.1),
            ("1.0", 1.0),
            ("1", 1.0),
            ("1e20", 1e20),
            ("-0", -0.0),
            ("-0.0", -0.0),
            ("5e-324", 5e-324),
            ("4.9e-324", 5e-324),
            ("inf", f64::INFINITY),
            ("-inf", f64::NEG_INFINITY),
            ("+inf", f64::INFINITY),
            ("INF", f64::INFINITY),
            ("Infinity", f64::INFINITY),
            ("-infinity", f64::NEG_INFINITY),
            ("0x10", 16.0),
            ("0x1p-2", 0.25),
            ("0X1P+3", 8.0),
            ("0e-400", 0.0),
            (".5", 0.5),
            ("5.", 5.0),
            ("+5", 5.0),
            ("1e5", 100000.0),
            ("1.7976931348623157e308", f64::MAX),
            ("9007199254740993", 9007199254740992.0),
        ];
        for &(s, v) in ok {
            let got = parse_f64(s.as_bytes()).unwrap_or_else(|| panic!("{s:?} rejected"));
            assert_eq!(got.to_bits(), v.to_bits(), "{s:?}");
        }
        // "ERR value is not a valid float" from ZADD.
        for s in [
            "2e-324", "0x", "1e400", "-1e400", "1e-400", "1e", "--1", "", " 1", "1 ", "abc", "nan",
            "NaN", "1\x002", "infinit", "0x1g", "1_0", "\t1",
        ] {
            assert_eq!(parse_f64(s.as_bytes()), None, "{s:?}");
        }
        assert_eq!(parse_f64(b"\xff1"), None);
        // Long inputs take the strtod path too.
        let long_hex = format!("0x{}", "0".repeat(300)) + "1";
        assert_eq!(parse_f64(long_hex.as_bytes()), Some(1.0));
        let long_junk = "1".repeat(300) + "z";
        assert_eq!(parse_f64(long_junk.as_bytes()), None);
    }

    #[test]
    fn incrbyfloat_matches_real_server() {
        use IncrFloatError::*;
        // INCRBYFLOAT on redis-server 7.0.15: (current value or missing, increment, reply).
        let cases: &[(Option<&str>, &str, Result<&str, IncrFloatError>)] = &[
            (None, "0.1", Ok("0.1")),
            (Some("0.1"), "0.2", Ok("0.3")),
            (Some("10.5"), "0.1", Ok("10.6")),
            (Some("5.0e3"), "2.0e2", Ok("5200")),
            (Some("abc"), "1", Err(NotAFloat)),
            (None, "abc", Err(NotAFloat)),
            (None, " 1", Err(NotAFloat)),
            (None, "1 ", Err(NotAFloat)),
            (None, "", Err(NotAFloat)),
            (None, "inf", Err(NanOrInfinity)),
            (None, "-inf", Err(NanOrInfinity)),
            (Some("inf"), "1", Err(NanOrInfinity)),
            (Some("1"), "nan", Err(NotAFloat)),
            (None, "0x10", Ok("16")),
            (Some("3"), "-3", Ok("0")),
            (Some("-1"), "0.5", Ok("-0.5")),
            (None, "-0", Ok("0")),
            (None, "-0.0", Ok("0")),
            (None, "1e-30", Ok("0")),
            (None, "-1e-30", Ok("0")),
            (Some("1"), "1e-20", Ok("1")),
            (None, "1e20", Ok("100000000000000000000")),
            (None, "1e30", Ok("1000000000000000000024696061952")),
            (
                None,
                "123456789012345678901234567890",
                Ok("123456789012345678899921813504"),
            ),
            (None, "0.1e1", Ok("1")),
            (Some("1e4932"), "1e4932", Err(NanOrInfinity)),
            (None, "1e-5000", Err(NotAFloat)),
            (None, "1.5", Ok("1.5")),
            (Some("3.0"), "0", Ok("3")),
            (None, "+1", Ok("1")),
            (None, "1.10", Ok("1.1")),
            (Some("17179869184"), "0.5", Ok("17179869184.5")),
            (None, "3.3333333333333333333333", Ok("3.33333333333333333")),
            (None, "0.123456789012345678", Ok("0.12345678901234568")),
            (Some("9223372036854775807"), "1", Ok("9223372036854775808")),
            (None, "-9223372036854775808", Ok("-9223372036854775808")),
            (None, "5e-324", Ok("0")),
            (None, "1e-4940", Ok("0")),
            (None, "1.18973149535723176509e+4932", Err(NotAFloat)),
        ];
        for (cur, by, want) in cases {
            assert_eq!(incr(*cur, by), want.map(str::to_owned), "{cur:?} + {by:?}");
        }

        // Long results (checked in full against the server's replies).
        let r = incr(None, "1e400").unwrap();
        assert_eq!(r.len(), 401);
        assert!(r.starts_with("10000000000000000000281880683947586514586453433629052038625910"));
        assert!(r.ends_with("3732497430221946880"));
        let r = incr(Some("1.7976931348623157e308"), "1.7976931348623157e308").unwrap();
        assert_eq!(
            r,
            "3595386269724631399918420935482088680967728938886583569706288415303532570462487927\
             0940373721677417112885758683885104137861741672690227211071579455605295523414699795\
             5372576789671236326588091188869859074894581254961338834769297758245552436667197907\
             705664206565009503223382416235440319971852753604933726679072768"
        );
        let r = incr(Some("5"), "1e4932").unwrap();
        assert_eq!(r.len(), 4933);
        assert!(r.ends_with("163141086538418113791886622720"));
        let r = incr(None, "1.18973149535723176502e+4932").unwrap();
        assert_eq!(r.len(), 4933);
        assert!(r.starts_with("1189731495357231765021263853030970205169"));
        assert!(r.ends_with("444156604419552086811989770240"));

        // string2ld's length limit: 5119 bytes pass the length check (this one overflows),
        // 5120 do not.
        assert_eq!(incr(None, &"9".repeat(5119)), Err(NotAFloat));
        assert_eq!(incr(None, &"9".repeat(5120)), Err(NotAFloat));
        let long_ok = format!("0.5{}", "0".repeat(5116));
        assert_eq!(long_ok.len(), 5119);
        assert_eq!(incr(Some("2"), &long_ok), Ok("2.5".to_owned()));
        let too_long = format!("0.5{}", "0".repeat(5117));
        assert_eq!(incr(Some("2"), &too_long), Err(NotAFloat));
    }

    #[test]
    fn long_double_pieces_for_hincrbyfloat() {
        // HINCRBYFLOAT on the real server: "0.1" + "0.2" -> "0.3"; incr "inf" is parsed but
        // then refused ("value is NaN or Infinity") before the hash value is looked at.
        let a = LongDouble::parse(b"0.1").unwrap();
        let b = LongDouble::parse(b"0.2").unwrap();
        let mut out = Vec::new();
        (a + b).write_human(&mut out);
        assert_eq!(out, b"0.3");
        let inf = LongDouble::parse(b"inf").unwrap();
        assert!(!inf.is_finite());
        assert!(parse_long_double_ok(b"-inf"));
        assert!(!parse_long_double_ok(b"nan"));
        assert!(!parse_long_double_ok(b""));
        assert!(!parse_long_double_ok(b"1\x00"));
        assert!(parse_long_double_ok(b"0x1p-3"));
        assert_eq!(LongDouble::parse(b"0x1p-3").unwrap().to_f64(), 0.125);

        let mut out = Vec::new();
        (LongDouble::from_i64(i64::MIN) + LongDouble::ZERO).write_human(&mut out);
        assert_eq!(out, b"-9223372036854775808");
        assert_eq!(LongDouble::from_i64(3).to_f64(), 3.0);
        let mut out = Vec::new();
        inf.write_human(&mut out);
        assert_eq!(out, b"inf");
        assert_eq!(format!("{:?}", a), "LongDouble(0.1)");
    }
}
