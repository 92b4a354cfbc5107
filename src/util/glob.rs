//! Glob-style pattern matching identical to Redis's `stringmatchlen` (KEYS, SCAN MATCH, CONFIG GET).
//!
//! This is a line-by-line port of `stringmatchlen_impl` from Redis 7.0.15's util.c, including
//! the `skipLongerMatches` early exit (keeps `a*a*a*...b` polynomial) and the nesting limit of
//! 1000 added for CVE-2024-31228 (bounds recursion depth for patterns like `*?*?*?...`).
//!
//! Two C details are reproduced on purpose because they change results:
//! - C reads the pattern's NUL terminator past its end (Redis patterns are sds strings), so a
//!   read at or beyond `pattern.len()` yields 0 here.
//! - `char` is signed on x86_64 and glibc's C-locale `tolower` maps -128..=-2 to 128..=254 but
//!   leaves -1 (EOF, i.e. byte 0xFF) alone; `[a-z]` ranges compare those ints.

/// Recursion depth past which Redis gives up and reports "no match".
const MAX_NESTING: u32 = 1000;

/// True when `string` matches the glob `pattern` (`*`, `?`, `[...]`, `\x`), as Redis's stringmatchlen.
pub fn string_match(pattern: &[u8], string: &[u8], nocase: bool) -> bool {
    let mut skip_longer_matches = false;
    match_impl(pattern, 0, string, 0, nocase, &mut skip_longer_matches, 0)
}

/// Pattern byte at `i`, or the NUL terminator C would read at/after the end.
#[inline(always)]
fn pat_at(pattern: &[u8], i: usize) -> u8 {
    pattern.get(i).copied().unwrap_or(0)
}

/// glibc `tolower` in the C locale applied to a (signed) `char` promoted to int.
#[inline(always)]
fn c_tolower(c: i32) -> i32 {
    match c {
        65..=90 => c + 32,
        -128..=-2 => c + 256,
        _ => c,
    }
}

/// A byte as C sees a plain `char` on x86_64 (signed), promoted to int.
#[inline(always)]
fn as_c_char(b: u8) -> i32 {
    b as i8 as i32
}

/// Byte equality, case-folded only for ASCII letters (what `tolower(a) == tolower(b)` gives).
#[inline(always)]
fn chars_eq(a: u8, b: u8, nocase: bool) -> bool {
    if nocase {
        a.eq_ignore_ascii_case(&b)
    } else {
        a == b
    }
}

/// `stringmatchlen_impl`. `p`/`si` are the C `pattern`/`string` pointers as indices; the C
/// lengths are always `pattern.len() - p` and `string.len() - si`.
fn match_impl(
    pattern: &[u8],
    mut p: usize,
    string: &[u8],
    mut si: usize,
    nocase: bool,
    skip_longer_matches: &mut bool,
    nesting: u32,
) -> bool {
    // Protection against abusive patterns.
    if nesting > MAX_NESTING {
        return false;
    }
    let plen_total = pattern.len();
    let slen_total = string.len();

    while p < plen_total && si < slen_total {
        match pattern[p] {
            b'*' => {
                while p < plen_total && pat_at(pattern, p + 1) == b'*' {
                    p += 1;
                }
                if plen_total - p == 1 {
                    return true;
                }
                while si < slen_total {
                    if match_impl(
                        pattern,
                        p + 1,
                        string,
                        si,
                        nocase,
                        skip_longer_matches,
                        nesting + 1,
                    ) {
                        return true;
                    }
                    if *skip_longer_matches {
                        return false;
                    }
                    si += 1;
                }
                // The rest of the pattern matches nowhere in the rest of the string, so an
                // outer '*' consuming more characters cannot help either: stop everything.
                *skip_longer_matches = true;
                return false;
            }
            b'?' => {
                si += 1;
            }
            b'[' => {
                p += 1;
                let not = pat_at(pattern, p) == b'^';
                if not {
                    p += 1;
                }
                let c = string[si];
                let mut matched = false;
                loop {
                    let plen = plen_total - p;
                    let pc = pat_at(pattern, p);
                    if pc == b'\\' && plen >= 2 {
                        p += 1;
                        // Escapes inside a class compare exactly, even with nocase.
                        if pattern[p] == c {
                            matched = true;
                        }
                    } else if pc == b']' {
                        break;
                    } else if plen == 0 {
                        // Unterminated class: step back so the shared `p += 1` below lands
                        // exactly on the end of the pattern.
                        p -= 1;
                        break;
                    } else if plen >= 3 && pattern[p + 1] == b'-' {
                        let mut start = as_c_char(pc);
                        let mut end = as_c_char(pattern[p + 2]);
                        let mut ch = as_c_char(c);
                        if start > end {
                            std::mem::swap(&mut start, &mut end);
                        }
                        if nocase {
                            start = c_tolower(start);
                            end = c_tolower(end);
                            ch = c_tolower(ch);
                        }
                        p += 2;
                        if ch >= start && ch <= end {
                            matched = true;
                        }
                    } else if chars_eq(pc, c, nocase) {
                        matched = true;
                    }
                    p += 1;
                }
                if not {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                si += 1;
            }
            pc => {
                // A backslash escapes the next byte; a trailing one matches itself.
                let pc = if pc == b'\\' && plen_total - p >= 2 {
                    p += 1;
                    pattern[p]
                } else {
                    pc
                };
                if !chars_eq(pc, string[si], nocase) {
                    return false;
                }
                si += 1;
            }
        }
        p += 1;
        if si == slen_total {
            while pat_at(pattern, p) == b'*' {
                p += 1;
            }
            break;
        }
    }
    p == plen_total && si == slen_total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        string_match(p.as_bytes(), s.as_bytes(), false)
    }

    /// (pattern, string, nocase, expected). Every expectation was cross-checked against the
    /// C stringmatchlen of Redis 7.0.15 (and the KEYS ones against redis-server itself).
    #[rustfmt::skip]
    const CASES: &[(&[u8], &[u8], bool, bool)] = &[
        // Literals, '?' and '*'.
        (b"foo", b"foo", false, true),
        (b"foo", b"fo", false, false),
        (b"foo", b"fooo", false, false),
        (b"f?o", b"foo", false, true),
        (b"f?o", b"fo", false, false),
        (b"*", b"anything", false, true),
        (b"f*", b"foo", false, true),
        (b"*o", b"foo", false, true),
        (b"*oo*", b"foo", false, true),
        (b"f*o*o", b"foo", false, true),
        (b"f*x", b"foo", false, false),
        (b"a*b*c", b"aXXbYYc", false, true),
        (b"a*b*c", b"aXXbYY", false, false),
        (b"***a***", b"a", false, true),
        (b"?*", b"a", false, true),
        (b"??*", b"a", false, false),
        (b"", b"", false, true),
        (b"", b"a", false, false),
        (b"a", b"", false, false),
        // The main loop needs a pattern byte and a string byte, so "*" vs "" is a non-match
        // (KEYS special-cases the exact pattern "*"; `KEYS **` skips an empty key).
        (b"*", b"", false, false),
        (b"**", b"", false, false),
        (b"?", b"", false, false),
        (b"a*", b"a", false, true),
        (b"a**", b"a", false, true),
        (b"a*?", b"a", false, false),
        // Classes.
        (b"h[ae]llo", b"hello", false, true),
        (b"h[ae]llo", b"hallo", false, true),
        (b"h[ae]llo", b"hillo", false, false),
        (b"h[^e]llo", b"hallo", false, true),
        (b"h[^e]llo", b"hello", false, false),
        (b"h[a-b]llo", b"hbllo", false, true),
        (b"h[a-b]llo", b"hcllo", false, false),
        (b"h[b-a]llo", b"hallo", false, true), // reversed ranges are swapped
        (b"[z-a]", b"m", false, true),
        (b"[a-c-e]", b"-", false, true),
        (b"[a-c-e]", b"d", false, false),
        // "[a-]": the range check sees 'a' '-' ']' and consumes the ']', so this is the range
        // ']'..'a' in an unterminated class.
        (b"[a-]", b"-", false, false),
        (b"[a-]", b"_", false, true),
        (b"[-a]", b"-", false, true),
        (b"[\\]]", b"]", false, true),
        (b"[\\-]", b"-", false, true),
        (b"[\\^a]", b"^", false, true),
        (b"[abc", b"b", false, true), // unterminated: runs to the end of the pattern
        (b"[abc", b"d", false, false),
        (b"[", b"x", false, false),
        (b"[^", b"x", true, true),
        (b"[^", b"x", false, true),
        (b"a[", b"a", false, false),
        (b"a[", b"ab", false, false),
        (b"[]", b"a", false, false),
        (b"[]]", b"]", false, false), // "[]" is an empty class, then ']' has no string left
        (b"[]]", b"]]", false, false),
        (b"[^]", b"a", false, true),
        (b"[^]]", b"a]", false, true),
        (b"[\\", b"\\", false, true), // a lone backslash before the end is a literal byte
        (b"[\\", b"a", false, false),
        (b"[a\\", b"\\", false, true),
        (b"[a-z]*", b"hello", false, true),
        (b"[a-z]*", b"Hello", false, false),
        // Escapes.
        (b"\\*", b"*", false, true),
        (b"\\*", b"a", false, false),
        (b"\\?", b"?", false, true),
        (b"a\\[b", b"a[b", false, true),
        (b"\\a", b"a", false, true),
        (b"a\\", b"a\\", false, true), // trailing backslash matches itself
        (b"a\\", b"a", false, false),
        (b"\\", b"\\", false, true),
        (b"\\\\", b"\\", false, true),
        (b"*\\", b"ab\\", false, true),
        // nocase.
        (b"FOO", b"foo", true, true),
        (b"FOO", b"foo", false, false),
        (b"f?O", b"FoO", true, true),
        (b"[A-C]x", b"bX", true, true),
        (b"[a-c]", b"B", true, true),
        (b"[a-c]", b"B", false, false),
        (b"[^A]", b"b", true, true),
        (b"[^A]", b"a", true, false),
        (b"[\\A]", b"a", true, false), // escapes inside a class stay case-sensitive
        (b"\\A", b"a", true, true),
        (b"[Z-a]", b"z", true, false), // bounds lowered after the swap: [z-a] is empty
        (b"[Z-a]", b"_", false, true),
        (b"[Z-a]", b"_", true, false),
        // High bytes: ranges compare signed chars; with nocase glibc's tolower maps -128..=-2
        // to 128..=254 but leaves 0xFF (-1, EOF) alone.
        (b"[a-\xff]", b"\x80", false, false),
        (b"[a-\xff]", b"\x00", false, true),
        (b"[\x80-\x90]", b"\x85", false, true),
        (b"[\x7f-\x80]", b"\x85", false, true), // swapped to [-128, 127]: everything
        (b"[\x7f-\x80]", b"a", true, false), // [-128, 127] lowered to [128, 127]: empty
        (b"[\x00-\xfe]", b"\xfe", false, true), // 0xFE is -2: swapped to [-2, 0]
        (b"[\x00-\xfe]", b"\xfe", true, false), // [-2, 0] lowered to [254, 0]: empty
        (b"[\x00-\xfe]", b"\x00", false, true),
        (b"[\x80-\xff]", b"\xfe", false, true),
        (b"[\x80-\xff]", b"\xfe", true, false), // [-128, -1] lowered to [128, -1]: empty
        (b"[\x80-\xfe]", b"\xfe", true, true), // [128, 254]
        (b"[\x80-\xfe]", b"\xff", true, false), // 0xFF stays -1
        (b"\xe9", b"\xe9", true, true),
        (b"\xc9", b"\xe9", true, false),
        (b"a\x00b", b"a\x00b", false, true),
        (b"[\x00]", b"\x00", false, true),
        (b"*\x00", b"ab\x00", false, true),
    ];

    #[test]
    fn table_cases() {
        for &(p, s, nocase, expected) in CASES {
            assert_eq!(
                string_match(p, s, nocase),
                expected,
                "pattern {:?} string {:?} nocase {}",
                String::from_utf8_lossy(p),
                String::from_utf8_lossy(s),
                nocase
            );
        }
    }

    #[test]
    fn keyspace_tcl_keys_cases() {
        // From tests/unit/keyspace.tcl: keys foo_a foo_b foo_c key_x key_y key_z.
        let keys = ["foo_a", "foo_b", "foo_c", "key_x", "key_y", "key_z"];
        let sel = |p: &str| -> Vec<&str> { keys.iter().copied().filter(|k| m(p, k)).collect() };
        assert_eq!(sel("foo*"), ["foo_a", "foo_b", "foo_c"]);
        assert_eq!(sel("key*"), ["key_x", "key_y", "key_z"]);
        assert_eq!(sel("*_?"), keys);
        assert_eq!(sel("foo_[ab]"), ["foo_a", "foo_b"]);
        assert_eq!(sel("key_[^x]"), ["key_y", "key_z"]);
        // "KEYS with hashtag": {a}x, {a}y, {b}z.
        let tagged = ["{a}x", "{a}y", "{b}z"];
        let tsel = |p: &str| -> Vec<&str> { tagged.iter().copied().filter(|k| m(p, k)).collect() };
        assert_eq!(tsel("\\{a\\}*"), ["{a}x", "{a}y"]);
        assert_eq!(tsel("{a}*"), ["{a}x", "{a}y"]);
    }

    #[test]
    fn pathological_patterns_are_fast() {
        // keyspace.tcl "Regression for pattern matching long nested loops".
        let key = vec![b'a'; 40];
        let pat = "a*".repeat(20) + "b";
        assert!(!string_match(pat.as_bytes(), &key, false));

        let long = vec![b'a'; 100_000];
        let pat = "a*".repeat(1000) + "b";
        assert!(!string_match(pat.as_bytes(), &long, false));
        let pat = "*a".repeat(500) + "*b*";
        assert!(!string_match(pat.as_bytes(), &long, false));

        // keyspace.tcl "Regression for pattern matching very long nested loops": the nesting
        // limit makes this a non-match (and keeps recursion at 1001 frames).
        let key = vec![b'a'; 50_000];
        let pat = "*?".repeat(50_000);
        assert!(!string_match(pat.as_bytes(), &key, false));
    }

    #[test]
    fn nesting_limit_boundary() {
        // 1000 stars nest to depth 1000 (allowed); 1001 stars exceed it.
        let s = vec![b'a'; 2000];
        let ok = "?*".repeat(1000);
        assert!(string_match(ok.as_bytes(), &s, false));
        let ok = "*?".repeat(1000);
        assert!(string_match(ok.as_bytes(), &s, false));
        let too_deep = "*?".repeat(1001);
        assert!(!string_match(too_deep.as_bytes(), &s, false));
        let trailing_star_ok = "?*".repeat(1001);
        assert!(string_match(trailing_star_ok.as_bytes(), &s, false));
    }
}
