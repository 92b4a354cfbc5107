//! RESP: request encoding (multibulk) and an incremental reply parser that keeps only what validation needs.

/// A parsed reply, reduced to what the validators look at (no payload copies on the hot path).
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// `+...`; `true` when it is exactly `+OK`.
    Simple(bool),
    /// `-...`, with its text (rare, so the copy does not matter).
    Error(String),
    /// `:n`.
    Int(i64),
    /// `$len` (None = null bulk `$-1`).
    Bulk(Option<usize>),
    /// `*n` (None = null array `*-1`).
    Array(Option<Vec<Reply>>),
    /// Any RESP3 type (only seen if a custom template switched protocols).
    Other,
}

/// Appends a command as a RESP multibulk array.
pub fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.push(b'*');
    push_uint(out, args.len() as u64);
    out.extend_from_slice(b"\r\n");
    for a in args {
        push_bulk(out, a);
    }
}

/// Appends the `*n\r\n` header of an array.
pub fn push_array_header(out: &mut Vec<u8>, n: usize) {
    out.push(b'*');
    push_uint(out, n as u64);
    out.extend_from_slice(b"\r\n");
}

/// Appends one bulk string.
#[inline]
pub fn push_bulk(out: &mut Vec<u8>, a: &[u8]) {
    out.push(b'$');
    push_uint(out, a.len() as u64);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(a);
    out.extend_from_slice(b"\r\n");
}

/// Appends the decimal digits of `v`.
#[inline]
pub fn push_uint(out: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

/// Appends `v` zero-padded to at least `width` digits (key names like `key:000000000042`).
#[inline]
pub fn push_padded(out: &mut Vec<u8>, v: u64, width: usize) {
    let mut tmp = [b'0'; 24];
    let mut i = tmp.len();
    let mut x = v;
    loop {
        i -= 1;
        tmp[i] = b'0' + (x % 10) as u8;
        x /= 10;
        if x == 0 {
            break;
        }
    }
    let start = i.min(tmp.len() - width.min(tmp.len()));
    out.extend_from_slice(&tmp[start..]);
}

/// Parses one reply from the front of `buf`: `Ok(None)` if incomplete, else the reply and the bytes it used.
pub fn parse(buf: &[u8]) -> Result<Option<(Reply, usize)>, String> {
    parse_at(buf, 0, 0)
}

fn line_end(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|p| from + p)
}

fn parse_int(s: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(s)
        .ok()
        .and_then(|t| t.parse::<i64>().ok())
        .ok_or_else(|| {
            format!(
                "protocol error: bad integer {:?}",
                String::from_utf8_lossy(s)
            )
        })
}

fn parse_at(buf: &[u8], pos: usize, depth: usize) -> Result<Option<(Reply, usize)>, String> {
    if depth > 64 {
        return Err("protocol error: replies nested too deep".into());
    }
    let Some(&t) = buf.get(pos) else {
        return Ok(None);
    };
    let Some(eol) = line_end(buf, pos + 1) else {
        return Ok(None);
    };
    let line = &buf[pos + 1..eol];
    let next = eol + 2;
    match t {
        b'+' => Ok(Some((Reply::Simple(line == b"OK"), next))),
        b'-' => Ok(Some((
            Reply::Error(String::from_utf8_lossy(line).into_owned()),
            next,
        ))),
        b':' => Ok(Some((Reply::Int(parse_int(line)?), next))),
        b'$' => {
            let n = parse_int(line)?;
            if n < 0 {
                return Ok(Some((Reply::Bulk(None), next)));
            }
            let end = next + n as usize;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err("protocol error: bulk string not terminated by CRLF".into());
            }
            Ok(Some((Reply::Bulk(Some(n as usize)), end + 2)))
        }
        b'*' => {
            let n = parse_int(line)?;
            if n < 0 {
                return Ok(Some((Reply::Array(None), next)));
            }
            let mut items = Vec::with_capacity((n as usize).min(1024));
            let mut at = next;
            for _ in 0..n {
                match parse_at(buf, at, depth + 1)? {
                    Some((r, used)) => {
                        items.push(r);
                        at = used;
                    }
                    None => return Ok(None),
                }
            }
            Ok(Some((Reply::Array(Some(items)), at)))
        }
        // RESP3 scalars and aggregates: consumed only as far as needed for framing.
        b'_' | b',' | b'#' | b'(' => Ok(Some((Reply::Other, next))),
        b'=' | b'!' => {
            let n = parse_int(line)?;
            let end = next + n.max(0) as usize;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            Ok(Some((Reply::Other, end + 2)))
        }
        b'%' | b'~' | b'>' | b'|' => {
            let n = parse_int(line)?.max(0) as usize;
            let n = if t == b'%' || t == b'|' { n * 2 } else { n };
            let mut at = next;
            for _ in 0..n {
                match parse_at(buf, at, depth + 1)? {
                    Some((_, used)) => at = used,
                    None => return Ok(None),
                }
            }
            if t == b'|' {
                // An attribute precedes the real reply.
                return match parse_at(buf, at, depth + 1)? {
                    Some((r, used)) => Ok(Some((r, used))),
                    None => Ok(None),
                };
            }
            Ok(Some((Reply::Other, at)))
        }
        _ => Err(format!(
            "protocol error: unexpected reply type byte {t:#04x}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_and_parses() {
        let mut out = Vec::new();
        encode(&mut out, &[b"SET", b"k", b"value"]);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n");
        let mut k = Vec::new();
        push_padded(&mut k, 42, 12);
        assert_eq!(k, b"000000000042");
        k.clear();
        push_padded(&mut k, 1234567890123, 12);
        assert_eq!(k, b"1234567890123");

        let buf = b"+OK\r\n$3\r\nabc\r\n*2\r\n$-1\r\n:5\r\n-ERR x\r\n$10\r\nabc";
        let (r, n) = parse(buf).unwrap().unwrap();
        assert_eq!((r, n), (Reply::Simple(true), 5));
        let (r, n2) = parse(&buf[n..]).unwrap().unwrap();
        assert_eq!(r, Reply::Bulk(Some(3)));
        let rest = &buf[n + n2..];
        let (r, n3) = parse(rest).unwrap().unwrap();
        assert_eq!(
            r,
            Reply::Array(Some(vec![Reply::Bulk(None), Reply::Int(5)]))
        );
        let (r, n4) = parse(&rest[n3..]).unwrap().unwrap();
        assert_eq!(r, Reply::Error("ERR x".into()));
        assert_eq!(parse(&rest[n3 + n4..]).unwrap(), None);
        assert_eq!(parse(b"*2\r\n:1\r\n").unwrap(), None);
        assert!(parse(b"?x\r\n").is_err());
    }
}
