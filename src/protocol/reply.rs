//! The reply encoder: RESP2 and RESP3 written straight into an output buffer.
//!
//! Handlers never see a socket; they append replies here. Every method picks
//! the wire form for the connection's protocol version, so a handler writes
//! `map_len(n)` once and a RESP2 client gets a flat array of 2n elements.

use crate::util::num;

/// Protocol version negotiated with HELLO (2 unless the client asked for 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Proto {
    /// RESP2: what every client speaks until it sends `HELLO 3`.
    #[default]
    Resp2,
    /// RESP3: maps, sets, doubles, nulls and pushes as their own types.
    Resp3,
}

/// An output buffer of encoded replies for one protocol version.
#[derive(Debug, Default)]
pub struct ReplyBuf {
    /// The encoded bytes, ready to be written to the socket.
    pub buf: Vec<u8>,
    /// The protocol the replies are encoded for.
    pub proto: Proto,
}

impl ReplyBuf {
    /// An empty buffer for `proto`.
    pub fn new(proto: Proto) -> Self {
        ReplyBuf {
            buf: Vec::new(),
            proto,
        }
    }

    /// True when replies are encoded as RESP3.
    #[inline]
    pub fn resp3(&self) -> bool {
        self.proto == Proto::Resp3
    }

    /// Bytes written so far.
    #[inline]
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when nothing was written.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    #[inline]
    fn line(&mut self, prefix: u8, n: i64) {
        // Most bulk lengths and aggregate sizes are below 100: written in one
        // go without the general formatter (Redis keeps shared headers for them).
        if (0..100).contains(&n) {
            let n = n as u8;
            if n < 10 {
                self.buf
                    .extend_from_slice(&[prefix, b'0' + n, b'\r', b'\n']);
            } else {
                self.buf
                    .extend_from_slice(&[prefix, b'0' + n / 10, b'0' + n % 10, b'\r', b'\n']);
            }
            return;
        }
        self.buf.push(prefix);
        num::push_i64(&mut self.buf, n);
        self.buf.extend_from_slice(b"\r\n");
    }

    /// `+OK`.
    #[inline]
    pub fn ok(&mut self) {
        self.buf.extend_from_slice(b"+OK\r\n");
    }

    /// A simple string (`+text`); `text` must not contain CR or LF.
    #[inline]
    pub fn simple(&mut self, text: &str) {
        self.simple_bytes(text.as_bytes());
    }

    /// A simple string from bytes; CR and LF are replaced by spaces as Redis does.
    pub fn simple_bytes(&mut self, text: &[u8]) {
        self.buf.push(b'+');
        self.push_line_safe(text);
        self.buf.extend_from_slice(b"\r\n");
    }

    /// An error reply. `text` is the whole message including its code
    /// (`ERR ...`, `WRONGTYPE ...`); a missing code gets `ERR ` in front, as
    /// Redis's addReplyError does for messages not starting with '-'.
    pub fn error(&mut self, text: &str) {
        self.buf.push(b'-');
        self.push_line_safe(text.as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    /// An error reply from bytes (user-provided text, e.g. from a script).
    pub fn error_bytes(&mut self, text: &[u8]) {
        self.buf.push(b'-');
        self.push_line_safe(text);
        self.buf.extend_from_slice(b"\r\n");
    }

    fn push_line_safe(&mut self, text: &[u8]) {
        if memchr::memchr2(b'\r', b'\n', text).is_none() {
            self.buf.extend_from_slice(text);
        } else {
            self.buf.extend(
                text.iter()
                    .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
            );
        }
    }

    /// An integer (`:n`).
    #[inline]
    pub fn int(&mut self, n: i64) {
        self.line(b':', n);
    }

    /// A bulk string.
    #[inline]
    pub fn bulk(&mut self, data: &[u8]) {
        self.line(b'$', data.len() as i64);
        self.buf.extend_from_slice(data);
        self.buf.extend_from_slice(b"\r\n");
    }

    /// A bulk string holding the decimal form of `n`.
    pub fn bulk_i64(&mut self, n: i64) {
        let mut tmp = [0u8; 24];
        let s = num::format_i64(n, &mut tmp);
        self.bulk(s);
    }

    /// A bulk string, or null when `None`.
    #[inline]
    pub fn bulk_opt(&mut self, data: Option<&[u8]>) {
        match data {
            Some(d) => self.bulk(d),
            None => self.null(),
        }
    }

    /// The null bulk string (RESP2 `$-1`, RESP3 `_`).
    #[inline]
    pub fn null(&mut self) {
        if self.resp3() {
            self.buf.extend_from_slice(b"_\r\n");
        } else {
            self.buf.extend_from_slice(b"$-1\r\n");
        }
    }

    /// The null array (RESP2 `*-1`, RESP3 `_`).
    #[inline]
    pub fn null_array(&mut self) {
        if self.resp3() {
            self.buf.extend_from_slice(b"_\r\n");
        } else {
            self.buf.extend_from_slice(b"*-1\r\n");
        }
    }

    /// The header of an array of `n` elements.
    #[inline]
    pub fn array_len(&mut self, n: usize) {
        self.line(b'*', n as i64);
    }

    /// The header of a map of `n` pairs (a flat array of 2n in RESP2).
    #[inline]
    pub fn map_len(&mut self, n: usize) {
        if self.resp3() {
            self.line(b'%', n as i64);
        } else {
            self.line(b'*', 2 * n as i64);
        }
    }

    /// The header of a set of `n` elements (an array in RESP2).
    #[inline]
    pub fn set_len(&mut self, n: usize) {
        if self.resp3() {
            self.line(b'~', n as i64);
        } else {
            self.line(b'*', n as i64);
        }
    }

    /// The header of a push message of `n` elements (an array in RESP2).
    #[inline]
    pub fn push_len(&mut self, n: usize) {
        if self.resp3() {
            self.line(b'>', n as i64);
        } else {
            self.line(b'*', n as i64);
        }
    }

    /// A double, formatted as Redis 7.0's addReplyDouble (`%.17g`, `inf`).
    pub fn double(&mut self, d: f64) {
        let mut tmp = [0u8; 64];
        let s = num::format_double(d, &mut tmp);
        if self.resp3() {
            self.buf.push(b',');
            self.buf.extend_from_slice(s);
            self.buf.extend_from_slice(b"\r\n");
        } else {
            self.bulk(s);
        }
    }

    /// A boolean (RESP3 `#t`/`#f`, RESP2 integer 1/0).
    pub fn boolean(&mut self, b: bool) {
        if self.resp3() {
            self.buf
                .extend_from_slice(if b { b"#t\r\n" } else { b"#f\r\n" });
        } else {
            self.int(b as i64);
        }
    }

    /// A verbatim string (RESP3 `=len\r\ntxt:...`, a bulk string in RESP2).
    pub fn verbatim(&mut self, format: &[u8; 3], data: &[u8]) {
        if self.resp3() {
            self.line(b'=', data.len() as i64 + 4);
            self.buf.extend_from_slice(format);
            self.buf.push(b':');
            self.buf.extend_from_slice(data);
            self.buf.extend_from_slice(b"\r\n");
        } else {
            self.bulk(data);
        }
    }

    /// Appends bytes that are already RESP for this protocol.
    #[inline]
    pub fn raw(&mut self, encoded: &[u8]) {
        self.buf.extend_from_slice(encoded);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(proto: Proto, f: impl FnOnce(&mut ReplyBuf)) -> Vec<u8> {
        let mut r = ReplyBuf::new(proto);
        f(&mut r);
        r.buf
    }

    #[test]
    fn nulls_per_protocol() {
        assert_eq!(enc(Proto::Resp2, |r| r.null()), b"$-1\r\n");
        assert_eq!(enc(Proto::Resp3, |r| r.null()), b"_\r\n");
        assert_eq!(enc(Proto::Resp2, |r| r.null_array()), b"*-1\r\n");
        assert_eq!(enc(Proto::Resp3, |r| r.null_array()), b"_\r\n");
    }

    #[test]
    fn aggregates_per_protocol() {
        assert_eq!(enc(Proto::Resp2, |r| r.map_len(2)), b"*4\r\n");
        assert_eq!(enc(Proto::Resp3, |r| r.map_len(2)), b"%2\r\n");
        assert_eq!(enc(Proto::Resp2, |r| r.set_len(3)), b"*3\r\n");
        assert_eq!(enc(Proto::Resp3, |r| r.set_len(3)), b"~3\r\n");
    }

    #[test]
    fn short_and_long_headers_match_the_general_form() {
        for n in [
            -100i64,
            -1,
            0,
            1,
            9,
            10,
            42,
            99,
            100,
            101,
            12345,
            i64::MAX,
            i64::MIN,
        ] {
            assert_eq!(
                enc(Proto::Resp2, |r| r.int(n)),
                format!(":{n}\r\n").into_bytes()
            );
            assert_eq!(
                enc(Proto::Resp2, |r| r.array_len(n.max(0) as usize)),
                format!("*{}\r\n", n.max(0)).into_bytes()
            );
        }
        let v = [b'x'; 150];
        for len in [0, 9, 10, 99, 100, 150] {
            let mut want = format!("${len}\r\n").into_bytes();
            want.extend_from_slice(&v[..len]);
            want.extend_from_slice(b"\r\n");
            assert_eq!(enc(Proto::Resp2, |r| r.bulk(&v[..len])), want);
        }
    }

    #[test]
    fn scalars() {
        assert_eq!(enc(Proto::Resp2, |r| r.int(-42)), b":-42\r\n");
        assert_eq!(enc(Proto::Resp2, |r| r.bulk(b"hi")), b"$2\r\nhi\r\n");
        assert_eq!(enc(Proto::Resp2, |r| r.bulk(b"")), b"$0\r\n\r\n");
        assert_eq!(
            enc(Proto::Resp2, |r| r.error("ERR bad\r\nthing")),
            b"-ERR bad  thing\r\n"
        );
        assert_eq!(enc(Proto::Resp3, |r| r.boolean(true)), b"#t\r\n");
        assert_eq!(enc(Proto::Resp2, |r| r.boolean(true)), b":1\r\n");
        assert_eq!(
            enc(Proto::Resp3, |r| r.verbatim(b"txt", b"ab")),
            b"=6\r\ntxt:ab\r\n"
        );
    }
}
