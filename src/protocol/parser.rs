//! The zero-copy, resumable RESP request parser: multibulk and inline commands as byte ranges of the read buffer.
//!
//! It follows Redis 7.0's `processInlineBuffer` / `processMultibulkBuffer` (networking.c) and
//! `sdssplitargs` (sds.c) rule for rule, including their quirks: line ends are found the way
//! `strchr` finds them (a NUL byte ends the search), the byte after a count line's `\r` and the
//! two bytes after a bulk payload are skipped without being checked, and the error texts match.

use memchr::memchr2;

/// PROTO_INLINE_MAX_SIZE: the most unparsed bytes Redis keeps while it waits for a line end.
const PROTO_INLINE_MAX_SIZE: usize = 1024 * 64;
/// An unauthenticated client may send at most this many arguments (`ll > 10 && authRequired(c)`).
const UNAUTH_MAX_MULTIBULK: i64 = 10;
/// An unauthenticated client may send bulks of at most this many bytes (`ll > 16384 && authRequired(c)`).
const UNAUTH_MAX_BULK: i64 = 16384;
/// LONG_STR_SIZE: string2ll rejects strings this long or longer.
const LONG_STR_SIZE: usize = 21;
/// Offsets are `u32`, so only this much of a buffer is ever looked at.
const MAX_BUF: usize = u32::MAX as usize;

const ERR_TOO_BIG_INLINE: &str = "Protocol error: too big inline request";
const ERR_UNBALANCED: &str = "Protocol error: unbalanced quotes in request";
const ERR_TOO_BIG_MBULK: &str = "Protocol error: too big mbulk count string";
const ERR_INVALID_MBULK: &str = "Protocol error: invalid multibulk length";
const ERR_UNAUTH_MBULK: &str = "Protocol error: unauthenticated multibulk length";
const ERR_TOO_BIG_BULK: &str = "Protocol error: too big bulk count string";
const ERR_INVALID_BULK: &str = "Protocol error: invalid bulk length";
const ERR_UNAUTH_BULK: &str = "Protocol error: unauthenticated bulk length";

/// One argument of a parsed command: a byte range of the read buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arg {
    /// Offset of the first byte in the buffer.
    pub start: u32,
    /// Length in bytes.
    pub len: u32,
}

impl Arg {
    /// The argument's byte range in the buffer.
    #[inline]
    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..(self.start + self.len) as usize
    }
}

/// Limits enforced while parsing: from the config and the client's auth state.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// proto-max-bulk-len: the largest bulk argument accepted.
    pub proto_max_bulk_len: u64,
    /// Unauthenticated clients get Redis's tighter multibulk/bulk limits.
    pub authenticated: bool,
}

/// A malformed request; the text is Redis's, e.g. `Protocol error: invalid bulk length`.
///
/// The text is what Redis sends after `-ERR `. The one message that can quote a raw byte
/// (`expected '$', got '%c'`) stores a non-ASCII byte as the char of the same value
/// (Latin-1); [`ProtocolError::wire_bytes`] turns it back into the exact bytes Redis sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl ProtocolError {
    fn new(text: &str) -> Self {
        ProtocolError(text.to_owned())
    }

    /// `Protocol error: expected '$', got '%c'`, built as Redis's addReplyErrorFormat builds it.
    fn expected_dollar(got: u8) -> Self {
        // addReplyErrorFormat maps \r and \n to spaces so the reply stays one line.
        let c = match got {
            b'\r' | b'\n' => ' ',
            b => char::from(b),
        };
        ProtocolError(format!("Protocol error: expected '$', got '{c}'"))
    }

    /// The message as Redis puts it on the wire (after `-ERR `): chars up to U+00FF become
    /// single bytes, so a quoted non-ASCII byte comes out raw, exactly as Redis sends it.
    pub fn wire_bytes(&self) -> Vec<u8> {
        if self.0.is_ascii() {
            return self.0.as_bytes().to_vec();
        }
        let mut out = Vec::with_capacity(self.0.len());
        for c in self.0.chars() {
            match u8::try_from(c) {
                Ok(b) => out.push(b),
                Err(_) => {
                    let mut tmp = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
                }
            }
        }
        out
    }
}

/// A resumable parser for one connection's request stream.
///
/// Commands are lists of [`Arg`] ranges into the caller's buffer. A command cut off by the end
/// of the buffer is remembered (parsed arguments, position, arguments still to come, length of
/// the pending bulk), so the next [`RespParser::parse`] continues where this one stopped and a
/// huge command costs linear time however it is split.
///
/// The intended loop: read into the buffer, `parse`, run `command(0..len())`, drop `consumed()`
/// bytes from the buffer front, `clear_complete()`; repeat `parse` without reading while it keeps
/// yielding commands (it yields one at a time to unauthenticated clients, see `parse`).
#[derive(Debug, Default)]
pub struct RespParser {
    /// Arguments of the complete commands, then those of the partial command.
    args: Vec<Arg>,
    /// `ends[i]`: one past the last argument of complete command `i` in `args`.
    ends: Vec<u32>,
    /// Bytes at the buffer front taken by complete and skipped empty commands.
    consumed: usize,
    /// Where parsing resumes: the start of the next line or bulk payload.
    pos: usize,
    /// Bulks still expected by the multibulk command being parsed (0: between commands).
    multibulk_left: u32,
    /// Length of the bulk whose `$` line was read but whose payload has not fully arrived.
    bulk_len: Option<u32>,
    /// Where the search for the current line's end resumes, so a long line arriving in pieces is
    /// scanned once; may be stale (below `pos`), so it is only ever used through `max(pos, _)`.
    scan_from: usize,
    /// Buffer length seen by the last `parse`, for `partial_len`.
    seen_len: usize,
    /// Set by the first protocol error; the stream cannot be resynchronised after one.
    error: Option<ProtocolError>,
    /// Set during [`RespParser::parse_one`]: stop after one complete command.
    one: bool,
}

impl RespParser {
    /// A parser with nothing parsed.
    pub fn new() -> Self {
        RespParser::default()
    }

    /// Parses every complete command in `buf[self.consumed()..]`.
    ///
    /// Appends each complete command to the list read by [`len`](Self::len) and
    /// [`command`](Self::command); empty commands (`*0`, `*-1`, blank inline lines) are consumed
    /// but not listed, as Redis skips them. Inline arguments are unescaped in place, which is
    /// why `buf` is mutable: every argument stays a range of `buf`.
    ///
    /// When `limits.authenticated` is false it stops after the first complete command: that
    /// command (AUTH, HELLO) may lift the limits for the ones after it, as Redis executes each
    /// command before it parses the next. Call `parse` again after running it.
    ///
    /// On malformed input it returns Redis's error text; commands completed before the error
    /// stay listed (Redis runs them, then replies with the error and closes the connection).
    /// Once an error is returned, every later call returns it again.
    ///
    /// Only the first 4 GiB of `buf` are looked at (offsets are `u32`); the caller drops
    /// consumed bytes long before that.
    pub fn parse(&mut self, buf: &mut [u8], limits: &Limits) -> Result<(), ProtocolError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let cap = buf.len().min(MAX_BUF);
        let buf = &mut buf[..cap];
        self.seen_len = buf.len();
        let res = self.run(buf, limits);
        if let Err(e) = &res {
            // Arguments of the command that failed are not a partial command any more.
            self.args.truncate(self.complete_args());
            self.multibulk_left = 0;
            self.bulk_len = None;
            self.error = Some(e.clone());
        }
        res
    }

    /// As [`parse`](Self::parse), but stops after the first complete command, so that
    /// `consumed()` is where that command ends (a busy script's hook answers a
    /// connection's commands one by one and leaves the rest untouched, see `server::busy`).
    pub fn parse_one(&mut self, buf: &mut [u8], limits: &Limits) -> Result<(), ProtocolError> {
        self.one = true;
        let r = self.parse(buf, limits);
        self.one = false;
        r
    }

    /// Complete commands parsed since the last `clear_complete`.
    #[inline]
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when no complete command is pending.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The arguments of complete command `i`.
    #[inline]
    pub fn command(&self, i: usize) -> &[Arg] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.args[start..self.ends[i] as usize]
    }

    /// Bytes at the front of the buffer taken by complete (or skipped empty) commands.
    #[inline]
    pub fn consumed(&self) -> usize {
        self.consumed
    }

    /// Forgets the complete commands once the caller removed `consumed()` bytes from the buffer front.
    ///
    /// The partial command's state is rebased onto the new buffer start, so its parsed
    /// arguments stay valid and parsing resumes where it stopped.
    pub fn clear_complete(&mut self) {
        let done = self.complete_args();
        self.ends.clear();
        if done == self.args.len() {
            self.args.clear();
        } else {
            self.args.drain(..done);
        }
        let c = self.consumed;
        if c == 0 {
            return;
        }
        // Each partial argument is rebased at most once: later rounds have no complete
        // command before it (consumed == 0) until it completes itself.
        let shift = c as u32;
        for a in &mut self.args {
            a.start -= shift;
        }
        self.pos -= c;
        self.scan_from = self.scan_from.saturating_sub(c);
        self.seen_len = self.seen_len.saturating_sub(c);
        self.consumed = 0;
    }

    /// True when bytes beyond the complete commands were seen but do not form a command yet.
    #[inline]
    pub fn has_partial(&self) -> bool {
        self.partial_len() > 0
    }

    /// Bytes of the buffer (as last seen by `parse`) after `consumed()`: the partial command.
    #[inline]
    pub fn partial_len(&self) -> usize {
        self.seen_len.saturating_sub(self.consumed)
    }

    /// While the payload of a bulk argument is awaited: the buffer length at which it is
    /// complete (payload and its two trailing bytes), so the caller can reserve room for a
    /// big argument at once, as Redis does for bulks of 32 KiB and more.
    #[inline]
    pub fn needed_len(&self) -> Option<usize> {
        self.bulk_len.map(|n| self.pos + n as usize + 2)
    }

    /// Number of arguments in `args` that belong to complete commands.
    #[inline]
    fn complete_args(&self) -> usize {
        self.ends.last().map_or(0, |&e| e as usize)
    }

    /// The parse loop: whole commands until the buffer runs out or an error.
    fn run(&mut self, buf: &mut [u8], limits: &Limits) -> Result<(), ProtocolError> {
        let len = buf.len();
        let commands_before = self.ends.len();
        loop {
            if self.multibulk_left == 0 {
                if self.pos >= len {
                    return Ok(());
                }
                if (!limits.authenticated || self.one) && self.ends.len() > commands_before {
                    return Ok(());
                }
                // Redis picks the request type from the first byte of each command.
                let progressed = if buf[self.pos] == b'*' {
                    self.multibulk_count(buf, limits)?
                } else {
                    self.inline(buf)?
                };
                if !progressed {
                    return Ok(());
                }
                continue;
            }
            // The hot loop keeps its state in locals and stores it back when it leaves.
            let mut pos = self.pos;
            let mut left = self.multibulk_left;
            loop {
                let n = match self.bulk_len.take() {
                    Some(n) => n as usize,
                    None => match fast_bulk_header(buf, pos, limits) {
                        Some((n, data)) => {
                            pos = data;
                            n
                        }
                        None => {
                            self.pos = pos;
                            self.multibulk_left = left;
                            let Some(n) = self.bulk_header(buf, limits)? else {
                                return Ok(());
                            };
                            pos = self.pos;
                            n
                        }
                    },
                };
                // Redis waits for the payload plus 2 bytes and skips those 2 unchecked.
                if len - pos < n + 2 {
                    self.pos = pos;
                    self.multibulk_left = left;
                    self.bulk_len = Some(n as u32);
                    return Ok(());
                }
                self.args.push(Arg {
                    start: pos as u32,
                    len: n as u32,
                });
                pos += n + 2;
                left -= 1;
                if left == 0 {
                    break;
                }
            }
            self.multibulk_left = 0;
            self.pos = pos;
            self.ends.push(self.args.len() as u32);
            self.consumed = pos;
        }
    }

    /// Finds the end of the line at `pos` as Redis's `strchr(querybuf+qb_pos, needle)` does:
    /// a NUL byte before `needle` means "not found" (the C string ends there).
    #[inline]
    fn find_line_end(&mut self, buf: &[u8], needle: u8) -> Option<usize> {
        let from = self.pos.max(self.scan_from);
        match memchr2(needle, 0, &buf[from..]) {
            Some(i) if buf[from + i] == needle => Some(from + i),
            Some(i) => {
                // The NUL stays first whatever arrives later: resume right at it.
                self.scan_from = from + i;
                None
            }
            None => {
                self.scan_from = buf.len();
                None
            }
        }
    }

    /// The `*<count>` line. Ok(false): wait for more data.
    fn multibulk_count(&mut self, buf: &[u8], limits: &Limits) -> Result<bool, ProtocolError> {
        let len = buf.len();
        let pos = self.pos;
        let (count, r) = match fast_number(buf, pos) {
            Some((n, r)) => (Some(n), r),
            None => {
                let Some(r) = self.find_line_end(buf, b'\r') else {
                    if len - pos > PROTO_INLINE_MAX_SIZE {
                        return Err(ProtocolError::new(ERR_TOO_BIG_MBULK));
                    }
                    return Ok(false);
                };
                (string2ll(&buf[pos + 1..r]), r)
            }
        };
        // Redis needs one byte after the '\r' but never looks at it.
        if r + 1 >= len {
            self.scan_from = r;
            return Ok(false);
        }
        let count = match count {
            Some(n) if n <= i32::MAX as i64 => n,
            _ => return Err(ProtocolError::new(ERR_INVALID_MBULK)),
        };
        if count > UNAUTH_MAX_MULTIBULK && !limits.authenticated {
            return Err(ProtocolError::new(ERR_UNAUTH_MBULK));
        }
        self.pos = r + 2;
        if count <= 0 {
            self.consumed = self.pos;
        } else {
            self.multibulk_left = count as u32;
        }
        Ok(true)
    }

    /// A `$<len>` line, the exact way (`fast_bulk_header` takes the plain ones): the payload
    /// length, with `pos` moved to the payload, or None to wait for more data.
    #[inline(never)]
    fn bulk_header(&mut self, buf: &[u8], limits: &Limits) -> Result<Option<usize>, ProtocolError> {
        let len = buf.len();
        let pos = self.pos;
        if pos >= len {
            return Ok(None);
        }
        let Some(r) = self.find_line_end(buf, b'\r') else {
            if len - pos > PROTO_INLINE_MAX_SIZE {
                return Err(ProtocolError::new(ERR_TOO_BIG_BULK));
            }
            return Ok(None);
        };
        // Redis needs one byte after the '\r' but never looks at it.
        if r + 1 >= len {
            self.scan_from = r;
            return Ok(None);
        }
        if buf[pos] != b'$' {
            return Err(ProtocolError::expected_dollar(buf[pos]));
        }
        let ll = match string2ll(&buf[pos + 1..r]) {
            Some(n) if n >= 0 && n as u64 <= limits.proto_max_bulk_len => n,
            _ => return Err(ProtocolError::new(ERR_INVALID_BULK)),
        };
        if ll > UNAUTH_MAX_BULK && !limits.authenticated {
            return Err(ProtocolError::new(ERR_UNAUTH_BULK));
        }
        // Not Redis's: an argument ending past 4 GiB cannot be an Arg.
        if (r + 2) as u64 + ll as u64 + 2 > MAX_BUF as u64 {
            return Err(ProtocolError::new(ERR_INVALID_BULK));
        }
        self.pos = r + 2;
        Ok(Some(ll as usize))
    }

    /// An inline command line. Ok(false): wait for more data.
    fn inline(&mut self, buf: &mut [u8]) -> Result<bool, ProtocolError> {
        let len = buf.len();
        let pos = self.pos;
        let Some(nl) = self.find_line_end(buf, b'\n') else {
            if len - pos > PROTO_INLINE_MAX_SIZE {
                return Err(ProtocolError::new(ERR_TOO_BIG_INLINE));
            }
            return Ok(false);
        };
        let mut end = nl;
        if end > pos && buf[end - 1] == b'\r' {
            end -= 1;
        }
        let first = self.args.len();
        split_args(buf, pos, end, &mut self.args)
            .map_err(|()| ProtocolError::new(ERR_UNBALANCED))?;
        self.pos = nl + 1;
        self.consumed = self.pos;
        if self.args.len() > first {
            self.ends.push(self.args.len() as u32);
        }
        Ok(true)
    }
}

/// The common `$<n>\r\n` header whose length passes every check: the length and the payload
/// start. None sends the header down the exact path (`bulk_header`), which decides the rest.
#[inline(always)]
fn fast_bulk_header(buf: &[u8], pos: usize, limits: &Limits) -> Option<(usize, usize)> {
    if *buf.get(pos)? != b'$' {
        return None;
    }
    let (n, r) = fast_number(buf, pos)?;
    let data = r + 2;
    // The same checks as bulk_header, in a form that only ever says "accept".
    if data > buf.len()
        || n as u64 > limits.proto_max_bulk_len
        || (n > UNAUTH_MAX_BULK && !limits.authenticated)
        || data as u64 + n as u64 + 2 > MAX_BUF as u64
    {
        return None;
    }
    Some((n as usize, data))
}

/// Fast path for the common `<prefix><digits>\r` header: returns the number and the `\r`
/// position when the line is plainly a valid, short, non-negative number. Anything else
/// (signs, leading zeros, long numbers, garbage, no `\r` yet) returns None for the exact path,
/// which then finds the same `\r` (digits are neither `\r` nor NUL) or the error.
#[inline(always)]
fn fast_number(buf: &[u8], pos: usize) -> Option<(i64, usize)> {
    let start = pos + 1;
    let end = buf.len().min(start + 18);
    let mut i = start;
    let mut v: i64 = 0;
    while i < end {
        let d = buf[i].wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        v = v * 10 + d as i64;
        i += 1;
    }
    let digits = i - start;
    if digits == 0 || i >= buf.len() || buf[i] != b'\r' || (buf[start] == b'0' && digits > 1) {
        return None;
    }
    Some((v, i))
}

/// Redis's string2ll: strict decimal i64, no sign but '-', no spaces, no leading zeros, "-0" invalid.
fn string2ll(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() >= LONG_STR_SIZE {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (neg, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    if neg {
        if v > i64::MAX as u64 + 1 {
            None
        } else {
            Some((v as i64).wrapping_neg())
        }
    } else {
        i64::try_from(v).ok()
    }
}

/// C's isspace in the C locale.
#[inline]
fn is_c_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Bytes that end an unquoted run in sdssplitargs: its token separators and the two quotes.
/// (Unlike the blank skipping, \v and \f do not end a token.)
const UNQUOTED_STOP: [bool; 256] = {
    let mut t = [false; 256];
    t[b' ' as usize] = true;
    t[b'\n' as usize] = true;
    t[b'\r' as usize] = true;
    t[b'\t' as usize] = true;
    t[0] = true;
    t[b'"' as usize] = true;
    t[b'\'' as usize] = true;
    t
};

#[inline]
fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Splits `buf[start..end]` as Redis's sdssplitargs does, writing the unescaped arguments back
/// in place (unescaping only shrinks, so the write cursor never passes the read cursor) and
/// pushing their ranges. The line holds no NUL and no '\n' (the line search stops at either),
/// so 0 serves as the C string terminator past `end`.
fn split_args(buf: &mut [u8], start: usize, end: usize, out: &mut Vec<Arg>) -> Result<(), ()> {
    let at = |buf: &[u8], i: usize| if i < end { buf[i] } else { 0 };
    let mut p = start;
    let mut w = start;
    loop {
        while p < end && is_c_space(buf[p]) {
            p += 1;
        }
        if p >= end {
            return Ok(());
        }
        let tok = w;
        // 0: unquoted, b'"' or b'\'': inside those quotes.
        let mut quote = 0u8;
        loop {
            if quote == 0 {
                let run_end = buf[p..end]
                    .iter()
                    .position(|&c| UNQUOTED_STOP[c as usize])
                    .map_or(end, |i| p + i);
                if w != p {
                    buf.copy_within(p..run_end, w);
                }
                w += run_end - p;
                p = run_end;
                match at(buf, p) {
                    q @ (b'"' | b'\'') => {
                        quote = q;
                        p += 1;
                    }
                    _ => {
                        // A separator or the end finishes the token.
                        break;
                    }
                }
                continue;
            }
            // Copy the plain run up to the next backslash or closing quote.
            let run_end = memchr2(b'\\', quote, &buf[p..end]).map_or(end, |i| p + i);
            if w != p {
                buf.copy_within(p..run_end, w);
            }
            w += run_end - p;
            p = run_end;
            let c = at(buf, p);
            if c == 0 {
                return Err(()); // unterminated quotes
            }
            if c == quote {
                // A closing quote must be followed by a space or nothing at all.
                let next = at(buf, p + 1);
                if next != 0 && !is_c_space(next) {
                    return Err(());
                }
                p += 1;
                break;
            }
            // A backslash.
            let next = at(buf, p + 1);
            if quote == b'"' {
                if let (b'x', Some(h), Some(l)) =
                    (next, hex_val(at(buf, p + 2)), hex_val(at(buf, p + 3)))
                {
                    buf[w] = h * 16 + l;
                    w += 1;
                    p += 4;
                } else if next != 0 {
                    buf[w] = match next {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    };
                    w += 1;
                    p += 2;
                } else {
                    // A lone backslash at the end: kept, then the missing quote fails.
                    buf[w] = b'\\';
                    w += 1;
                    p += 1;
                }
            } else if next == b'\'' {
                buf[w] = b'\'';
                w += 1;
                p += 2;
            } else {
                // In single quotes any other backslash is literal.
                buf[w] = b'\\';
                w += 1;
                p += 1;
            }
        }
        out.push(Arg {
            start: tok as u32,
            len: (w - tok) as u32,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUTH: Limits = Limits {
        proto_max_bulk_len: 512 * 1024 * 1024,
        authenticated: true,
    };
    const NOAUTH: Limits = Limits {
        proto_max_bulk_len: 512 * 1024 * 1024,
        authenticated: false,
    };

    type Cmds = Vec<Vec<Vec<u8>>>;

    /// The complete commands' argument bytes.
    fn collect(p: &RespParser, buf: &[u8]) -> Cmds {
        (0..p.len())
            .map(|i| {
                p.command(i)
                    .iter()
                    .map(|a| buf[a.range()].to_vec())
                    .collect()
            })
            .collect()
    }

    /// One-shot parse of `input`.
    fn parse_all(input: &[u8], limits: &Limits) -> (Cmds, Option<String>) {
        feed(&[input], limits, true)
    }

    /// Feeds `chunks` one after another the way a connection loop does: parse until no new
    /// command, run (collect) them, drop the consumed front when `drain`, clear_complete.
    fn feed(chunks: &[&[u8]], limits: &Limits, drain: bool) -> (Cmds, Option<String>) {
        let mut p = RespParser::new();
        let mut buf: Vec<u8> = Vec::new();
        let mut cmds = Vec::new();
        let mut seen = 0; // commands already collected when not clearing
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            loop {
                let res = p.parse(&mut buf, limits);
                let all = collect(&p, &buf);
                let new = all.len() - seen;
                cmds.extend(all.into_iter().skip(seen));
                assert!(p.consumed() <= buf.len());
                if drain {
                    buf.drain(..p.consumed());
                    p.clear_complete();
                } else {
                    seen = p.len();
                }
                if let Err(e) = res {
                    return (cmds, Some(e.0));
                }
                if new == 0 {
                    break;
                }
            }
        }
        (cmds, None)
    }

    fn cmd(args: &[&[u8]]) -> Vec<Vec<u8>> {
        args.iter().map(|a| a.to_vec()).collect()
    }

    fn resp(args: &[&[u8]]) -> Vec<u8> {
        let mut v = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            v.extend_from_slice(a);
            v.extend_from_slice(b"\r\n");
        }
        v
    }

    fn err(input: &[u8], limits: &Limits) -> String {
        parse_all(input, limits)
            .1
            .expect("expected a protocol error")
    }

    // ---------------------------------------------------------------- reference model

    /// A literal port of Redis 7.0's processInputBuffer / processInlineBuffer /
    /// processMultibulkBuffer / sdssplitargs, copying arguments, used as the oracle.
    struct Reference {
        q: Vec<u8>,
        qb: usize,
        reqtype: u8,
        argv: Vec<Vec<u8>>,
        multibulklen: i64,
        bulklen: i64,
        out: Cmds,
        err: Option<String>,
        limits: Limits,
    }

    fn c_strchr(q: &[u8], from: usize, c: u8) -> Option<usize> {
        (from..q.len())
            .take_while(|&i| q[i] != 0 || c == 0)
            .find(|&i| q[i] == c)
    }

    fn ref_splitargs(line: &[u8]) -> Option<Vec<Vec<u8>>> {
        let at = |i: usize| line.get(i).copied().unwrap_or(0);
        let isspace = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
        let ishex = |c: u8| c.is_ascii_hexdigit();
        let hex = |c: u8| (c as char).to_digit(16).unwrap() as u8;
        let mut p = 0;
        let mut v = Vec::new();
        loop {
            while at(p) != 0 && isspace(at(p)) {
                p += 1;
            }
            if at(p) == 0 {
                return Some(v);
            }
            let (mut inq, mut insq, mut done) = (false, false, false);
            let mut cur = Vec::new();
            while !done {
                if inq {
                    if at(p) == b'\\' && at(p + 1) == b'x' && ishex(at(p + 2)) && ishex(at(p + 3)) {
                        cur.push(hex(at(p + 2)) * 16 + hex(at(p + 3)));
                        p += 3;
                    } else if at(p) == b'\\' && at(p + 1) != 0 {
                        p += 1;
                        cur.push(match at(p) {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 8,
                            b'a' => 7,
                            c => c,
                        });
                    } else if at(p) == b'"' {
                        if at(p + 1) != 0 && !isspace(at(p + 1)) {
                            return None;
                        }
                        done = true;
                    } else if at(p) == 0 {
                        return None;
                    } else {
                        cur.push(at(p));
                    }
                } else if insq {
                    if at(p) == b'\\' && at(p + 1) == b'\'' {
                        p += 1;
                        cur.push(b'\'');
                    } else if at(p) == b'\'' {
                        if at(p + 1) != 0 && !isspace(at(p + 1)) {
                            return None;
                        }
                        done = true;
                    } else if at(p) == 0 {
                        return None;
                    } else {
                        cur.push(at(p));
                    }
                } else {
                    match at(p) {
                        b' ' | b'\n' | b'\r' | b'\t' | 0 => done = true,
                        b'"' => inq = true,
                        b'\'' => insq = true,
                        c => cur.push(c),
                    }
                }
                if at(p) != 0 {
                    p += 1;
                }
            }
            v.push(cur);
        }
    }

    impl Reference {
        fn new(limits: Limits) -> Self {
            Reference {
                q: Vec::new(),
                qb: 0,
                reqtype: 0,
                argv: Vec::new(),
                multibulklen: 0,
                bulklen: -1,
                out: Vec::new(),
                err: None,
                limits,
            }
        }

        fn feed(&mut self, data: &[u8]) {
            if self.err.is_some() {
                return;
            }
            self.q.extend_from_slice(data);
            while self.qb < self.q.len() {
                if self.reqtype == 0 {
                    self.reqtype = if self.q[self.qb] == b'*' { 2 } else { 1 };
                }
                let ok = if self.reqtype == 1 {
                    self.inline()
                } else {
                    self.multibulk()
                };
                if !ok {
                    break;
                }
                if !self.argv.is_empty() {
                    self.out.push(std::mem::take(&mut self.argv));
                }
                self.reqtype = 0;
                self.multibulklen = 0;
                self.bulklen = -1;
            }
        }

        fn fail(&mut self, e: String) -> bool {
            self.err = Some(e);
            false
        }

        fn inline(&mut self) -> bool {
            let Some(mut nl) = c_strchr(&self.q, self.qb, b'\n') else {
                if self.q.len() - self.qb > PROTO_INLINE_MAX_SIZE {
                    return self.fail(ERR_TOO_BIG_INLINE.into());
                }
                return false;
            };
            let mut lf = 1;
            if nl != self.qb && self.q[nl - 1] == b'\r' {
                nl -= 1;
                lf += 1;
            }
            let Some(argv) = ref_splitargs(&self.q[self.qb..nl]) else {
                return self.fail(ERR_UNBALANCED.into());
            };
            self.qb = nl + lf;
            self.argv = argv;
            true
        }

        fn multibulk(&mut self) -> bool {
            if self.multibulklen == 0 {
                let Some(nl) = c_strchr(&self.q, self.qb, b'\r') else {
                    if self.q.len() - self.qb > PROTO_INLINE_MAX_SIZE {
                        return self.fail(ERR_TOO_BIG_MBULK.into());
                    }
                    return false;
                };
                if nl as isize - self.qb as isize > self.q.len() as isize - self.qb as isize - 2 {
                    return false;
                }
                let ll = match string2ll_ref(&self.q[self.qb + 1..nl]) {
                    Some(n) if n <= i32::MAX as i64 => n,
                    _ => return self.fail(ERR_INVALID_MBULK.into()),
                };
                if ll > 10 && !self.limits.authenticated {
                    return self.fail(ERR_UNAUTH_MBULK.into());
                }
                self.qb = nl + 2;
                if ll <= 0 {
                    return true;
                }
                self.multibulklen = ll;
            }
            while self.multibulklen > 0 {
                if self.bulklen == -1 {
                    let Some(nl) = c_strchr(&self.q, self.qb, b'\r') else {
                        if self.q.len() - self.qb > PROTO_INLINE_MAX_SIZE {
                            return self.fail(ERR_TOO_BIG_BULK.into());
                        }
                        break;
                    };
                    if nl as isize - self.qb as isize > self.q.len() as isize - self.qb as isize - 2
                    {
                        break;
                    }
                    if self.q[self.qb] != b'$' {
                        let c = self.q[self.qb];
                        return self.fail(ProtocolError::expected_dollar(c).0);
                    }
                    let ll = string2ll_ref(&self.q[self.qb + 1..nl]);
                    let ll = match ll {
                        Some(n) if n >= 0 && n as u64 <= self.limits.proto_max_bulk_len => n,
                        _ => return self.fail(ERR_INVALID_BULK.into()),
                    };
                    if ll > 16384 && !self.limits.authenticated {
                        return self.fail(ERR_UNAUTH_BULK.into());
                    }
                    self.qb = nl + 2;
                    self.bulklen = ll;
                }
                if ((self.q.len() - self.qb) as i64) < self.bulklen + 2 {
                    break;
                }
                let s = self.qb;
                self.argv
                    .push(self.q[s..s + self.bulklen as usize].to_vec());
                self.qb += self.bulklen as usize + 2;
                self.bulklen = -1;
                self.multibulklen -= 1;
            }
            self.multibulklen == 0
        }
    }

    /// util.c string2ll, ported literally.
    fn string2ll_ref(s: &[u8]) -> Option<i64> {
        let slen = s.len();
        if slen == 0 || slen >= 21 {
            return None;
        }
        if slen == 1 && s[0] == b'0' {
            return Some(0);
        }
        let mut p = 0;
        let mut negative = false;
        if s[0] == b'-' {
            negative = true;
            p += 1;
            if p == slen {
                return None;
            }
        }
        let mut v: u64;
        if (b'1'..=b'9').contains(&s[p]) {
            v = (s[p] - b'0') as u64;
            p += 1;
        } else {
            return None;
        }
        while p < slen && s[p].is_ascii_digit() {
            if v > u64::MAX / 10 {
                return None;
            }
            v *= 10;
            if v > u64::MAX - (s[p] - b'0') as u64 {
                return None;
            }
            v += (s[p] - b'0') as u64;
            p += 1;
        }
        if p < slen {
            return None;
        }
        if negative {
            if v > (i64::MAX as u64) + 1 {
                return None;
            }
            Some((v as i64).wrapping_neg())
        } else if v > i64::MAX as u64 {
            None
        } else {
            Some(v as i64)
        }
    }

    fn reference(chunks: &[&[u8]], limits: &Limits) -> (Cmds, Option<String>) {
        let mut r = Reference::new(*limits);
        for c in chunks {
            r.feed(c);
        }
        (r.out, r.err)
    }

    // ---------------------------------------------------------------- frames

    #[test]
    fn multibulk_command() {
        let (c, e) = parse_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n", &AUTH);
        assert_eq!(e, None);
        assert_eq!(c, vec![cmd(&[b"SET", b"k", b"value"])]);
    }

    #[test]
    fn arg_ranges_point_into_buffer() {
        let mut buf = b"*2\r\n$4\r\nECHO\r\n$0\r\n\r\nPING\r\n".to_vec();
        let mut p = RespParser::new();
        p.parse(&mut buf, &AUTH).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(
            p.command(0),
            &[Arg { start: 8, len: 4 }, Arg { start: 18, len: 0 }]
        );
        assert_eq!(p.command(1), &[Arg { start: 20, len: 4 }]);
        assert_eq!(p.consumed(), buf.len());
        assert!(!p.has_partial());
    }

    #[test]
    fn empty_and_binary_bulks() {
        let (c, e) = parse_all(b"*2\r\n$0\r\n\r\n$4\r\n\x00\r\n\xff\r\n", &AUTH);
        assert_eq!(e, None);
        assert_eq!(c, vec![cmd(&[b"", b"\x00\r\n\xff"])]);
    }

    #[test]
    fn empty_commands_are_consumed_not_listed() {
        for input in [
            &b"*0\r\n"[..],
            b"*-1\r\n",
            b"*-5\r\n",
            b"\r\n",
            b"\n",
            b"  \t \x0b\x0c\r\n",
        ] {
            let mut buf = input.to_vec();
            let mut p = RespParser::new();
            p.parse(&mut buf, &AUTH).unwrap();
            assert_eq!(p.len(), 0, "{input:?}");
            assert_eq!(p.consumed(), input.len(), "{input:?}");
        }
        let (c, e) = parse_all(b"*0\r\n*-1\r\n\r\n*1\r\n$4\r\nPING\r\n   \r\nPING\n", &AUTH);
        assert_eq!(e, None);
        assert_eq!(c, vec![cmd(&[b"PING"]), cmd(&[b"PING"])]);
    }

    #[test]
    fn pipeline_of_many_commands() {
        let mut input = Vec::new();
        let mut want = Vec::new();
        for i in 0..1000 {
            let k = format!("key:{i}");
            let v = "v".repeat(i % 37);
            if i % 3 == 0 {
                input.extend_from_slice(format!("SET {k} \"{v}\"\r\n").as_bytes());
            } else {
                input.extend(resp(&[b"SET", k.as_bytes(), v.as_bytes()]));
            }
            want.push(cmd(&[b"SET", k.as_bytes(), v.as_bytes()]));
        }
        let (c, e) = parse_all(&input, &AUTH);
        assert_eq!(e, None);
        assert_eq!(c, want);
        // Unauthenticated: one command per parse call, same result.
        assert_eq!(parse_all(&input, &NOAUTH), (want, None));
    }

    #[test]
    fn unauthenticated_parse_yields_one_command_per_call() {
        let mut buf = b"AUTH pw\r\n*11\r\n".to_vec();
        let mut p = RespParser::new();
        p.parse(&mut buf, &NOAUTH).unwrap();
        assert_eq!(collect(&p, &buf), vec![cmd(&[b"AUTH", b"pw"])]);
        buf.drain(..p.consumed());
        p.clear_complete();
        // AUTH succeeded: the 11-argument command is now fine.
        p.parse(&mut buf, &AUTH).unwrap();
        assert!(p.is_empty());
        assert!(p.has_partial());
        // Had it failed, Redis rejects the count.
        let mut buf = b"AUTH pw\r\n*11\r\n".to_vec();
        let mut p = RespParser::new();
        p.parse(&mut buf, &NOAUTH).unwrap();
        buf.drain(..p.consumed());
        p.clear_complete();
        let e = p.parse(&mut buf, &NOAUTH).unwrap_err();
        assert_eq!(e.0, ERR_UNAUTH_MBULK);
    }

    #[test]
    fn redis_skips_bytes_after_payload_and_after_count_cr_unchecked() {
        // Verified against redis-server 7.0.15: both give two PONGs.
        assert_eq!(
            parse_all(b"*1\r\n$4\r\nPINGXX*1\r\n$4\r\nPING\r\n", &AUTH),
            (vec![cmd(&[b"PING"]), cmd(&[b"PING"])], None)
        );
        assert_eq!(
            parse_all(b"*1\rX$4\rYPING\r\n", &AUTH),
            (vec![cmd(&[b"PING"])], None)
        );
        // A '\n' without '\r' is not a count line end: the '\r' further on is.
        assert_eq!(err(b"*1\n$4\r\nPING\r\n", &AUTH), ERR_INVALID_MBULK);
    }

    #[test]
    fn nul_byte_hides_the_line_end_like_strchr() {
        // Redis 7.0 searches lines with strchr: a NUL before the line end means "wait".
        for input in [
            &b"PI\x00NG\r\n"[..],
            b"*1\x00\r\n$4\r\nPING\r\n",
            b"*1\r\n$4\x00\r\nPING\r\n",
        ] {
            let mut buf = input.to_vec();
            let mut p = RespParser::new();
            p.parse(&mut buf, &AUTH).unwrap();
            assert!(p.is_empty(), "{input:?}");
            assert!(p.has_partial());
        }
        // ...until more than 64 KiB are pending.
        let mut big = b"PING\x00".to_vec();
        big.resize(70000, b'x');
        assert_eq!(err(&big, &AUTH), ERR_TOO_BIG_INLINE);
        let mut big = b"*1\x00".to_vec();
        big.resize(70000, b'x');
        assert_eq!(err(&big, &AUTH), ERR_TOO_BIG_MBULK);
        // A NUL inside a bulk payload is just data.
        assert_eq!(
            parse_all(b"*1\r\n$4\r\nPI\x00G\r\n", &AUTH),
            (vec![cmd(&[b"PI\x00G"])], None)
        );
    }

    // ---------------------------------------------------------------- inline

    #[test]
    fn inline_splitting_matches_sdssplitargs() {
        // (input line, expected args) — outputs checked against redis-server 7.0.15 with ECHO.
        let cases: &[(&[u8], &[&[u8]])] = &[
            (b"PING\r\n", &[b"PING"]),
            (b"PING\n", &[b"PING"]),
            (b"PING\r\r\n", &[b"PING"]),
            (b"  SET   k \t v  \r\n", &[b"SET", b"k", b"v"]),
            (b"ECHO a\x0bb\r\n", &[b"ECHO", b"a\x0bb"]),
            (b"ECHO \x0ba\r\n", &[b"ECHO", b"a"]),
            (b"ECHO a\x0cb\r\n", &[b"ECHO", b"a\x0cb"]),
            (b"ECHO a\rb\r\n", &[b"ECHO", b"a", b"b"]),
            (b"ECHO 'a\\'b'\r\n", &[b"ECHO", b"a'b"]),
            (b"ECHO \"\\x41\\x4g\\n\\q\"\r\n", &[b"ECHO", b"Ax4g\nq"]),
            (
                b"ECHO \"\\r\\t\\b\\a\\\\\\\"\"\r\n",
                &[b"ECHO", b"\r\t\x08\x07\\\""],
            ),
            (b"ECHO \"\\xfF\\x00\"\r\n", &[b"ECHO", b"\xff\x00"]),
            (b"ECHO a\"b c\"\r\n", &[b"ECHO", b"ab c"]),
            (b"ECHO a'b c'\r\n", &[b"ECHO", b"ab c"]),
            (b"ECHO \"a\"\x0b\r\n", &[b"ECHO", b"a"]),
            (b"ECHO \"\" ''\r\n", &[b"ECHO", b"", b""]),
            (b"ECHO \"a\"\r\r\n", &[b"ECHO", b"a"]),
            (b"ECHO \"x\\\"y\"\r\n", &[b"ECHO", b"x\"y"]),
            (b"ECHO 'x\\ny'\r\n", &[b"ECHO", b"x\\ny"]),
            (b"ECHO \"\\x\"\r\n", &[b"ECHO", b"x"]),
            (b"ECHO \"a b\"\t'c d'\r\n", &[b"ECHO", b"a b", b"c d"]),
            (b"\xe9t\xe9 \"\xff\"\r\n", &[b"\xe9t\xe9", b"\xff"]),
        ];
        for (input, want) in cases {
            let (c, e) = parse_all(input, &AUTH);
            assert_eq!(e, None, "{input:?}");
            assert_eq!(c, vec![cmd(want)], "{input:?}");
            assert_eq!(reference(&[input], &AUTH), (c, None), "{input:?}");
        }
    }

    #[test]
    fn inline_unescapes_in_place() {
        let mut buf = b"SET \"a\\x41\\nb\" 'c\\'d'\r\nGET x\r\n".to_vec();
        let mut p = RespParser::new();
        p.parse(&mut buf, &AUTH).unwrap();
        assert_eq!(
            collect(&p, &buf),
            vec![cmd(&[b"SET", b"aA\nb", b"c'd"]), cmd(&[b"GET", b"x"])]
        );
        // Every argument lies inside its own line.
        assert!(p.command(0).iter().all(|a| a.range().end <= 21));
        assert_eq!(p.command(1)[0].start, 23);
    }

    #[test]
    fn inline_unbalanced_quotes() {
        for input in [
            &b"ECHO \"a\"b\r\n"[..],
            b"ECHO \"a\r\n",
            b"ECHO 'a'b\r\n",
            b"ECHO 'a\r\n",
            b"ECHO \"a\\\"\r\n",
            b"ECHO 'a\\'\r\n",
            b"ECHO \"a\\\r\n",
            b"ECHO \"a\"'b'\r\n",
            b"\"\r\n",
        ] {
            assert_eq!(err(input, &AUTH), ERR_UNBALANCED, "{input:?}");
        }
        // Unbalanced but without a line end yet: wait, as Redis does.
        let mut buf = b"ECHO \"a".to_vec();
        let mut p = RespParser::new();
        p.parse(&mut buf, &AUTH).unwrap();
        assert!(p.is_empty() && p.has_partial());
    }

    #[test]
    fn inline_has_no_unauthenticated_limits() {
        let (c, e) = parse_all(b"ECHO 1 2 3 4 5 6 7 8 9 10 11\r\n", &NOAUTH);
        assert_eq!(e, None);
        assert_eq!(c[0].len(), 12);
    }

    #[test]
    fn inline_too_big() {
        let mut p = RespParser::new();
        let mut buf = vec![b'A'; PROTO_INLINE_MAX_SIZE];
        p.parse(&mut buf, &AUTH).unwrap();
        buf.push(b'\r');
        assert_eq!(p.parse(&mut buf, &AUTH).unwrap_err().0, ERR_TOO_BIG_INLINE);
        // A long line is fine when its end is already there.
        let mut line = b"ECHO ".to_vec();
        line.resize(70000, b'A');
        line.extend_from_slice(b"\r\n");
        let (c, e) = parse_all(&line, &AUTH);
        assert_eq!(e, None);
        assert_eq!(c[0][1].len(), 70000 - 5);
    }

    // ---------------------------------------------------------------- errors and limits

    #[test]
    fn malformed_multibulk_error_texts() {
        // All verified against redis-server 7.0.15.
        let cases: &[(&[u8], &str)] = &[
            (b"*+1\r\n", ERR_INVALID_MBULK),
            (b"*01\r\n", ERR_INVALID_MBULK),
            (b"* 1\r\n", ERR_INVALID_MBULK),
            (b"*1 \r\n", ERR_INVALID_MBULK),
            (b"*-0\r\n", ERR_INVALID_MBULK),
            (b"*\r\n", ERR_INVALID_MBULK),
            (b"*x\r\n", ERR_INVALID_MBULK),
            (b"*3000000000\r\n", ERR_INVALID_MBULK),
            (b"*2147483648\r\n", ERR_INVALID_MBULK),
            (b"*100000000000000000000\r\n", ERR_INVALID_MBULK),
            (b"*1\r\n$-1\r\n", ERR_INVALID_BULK),
            (b"*1\r\n$-0\r\n", ERR_INVALID_BULK),
            (b"*1\r\n$\r\n", ERR_INVALID_BULK),
            (b"*1\r\n$01\r\n", ERR_INVALID_BULK),
            (b"*1\r\n$+1\r\n", ERR_INVALID_BULK),
            (b"*1\r\n$1x\r\n", ERR_INVALID_BULK),
            (b"*1\r\n$536870913\r\n", ERR_INVALID_BULK),
            (b"*1\r\n$9223372036854775807\r\n", ERR_INVALID_BULK),
            (b"*1\r\n$9223372036854775808\r\n", ERR_INVALID_BULK),
            (b"*1\r\n$-9223372036854775808\r\n", ERR_INVALID_BULK),
            (b"*1\r\n$100000000000000000000\r\n", ERR_INVALID_BULK),
            (b"*1\r\n\r\n", "Protocol error: expected '$', got ' '"),
            (b"*1\r\n\n\r\n", "Protocol error: expected '$', got ' '"),
            (b"*1\r\nfoo\r\n", "Protocol error: expected '$', got 'f'"),
            (b"*1\r\n*1\r\n", "Protocol error: expected '$', got '*'"),
            (
                b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n",
                "Protocol error: expected '$', got 'f'",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(err(input, &AUTH), *want, "{input:?}");
            assert_eq!(
                reference(&[input], &AUTH).1.as_deref(),
                Some(*want),
                "{input:?}"
            );
        }
    }

    #[test]
    fn expected_dollar_quotes_raw_byte() {
        let mut buf = b"*1\r\n\xe9\r\n".to_vec();
        let mut p = RespParser::new();
        let e = p.parse(&mut buf, &AUTH).unwrap_err();
        // Redis sends the byte raw: "-ERR Protocol error: expected '$', got '\xe9'\r\n".
        assert_eq!(e.wire_bytes(), b"Protocol error: expected '$', got '\xe9'");
        assert_eq!(
            ProtocolError::new(ERR_INVALID_BULK).wire_bytes(),
            ERR_INVALID_BULK.as_bytes()
        );
    }

    #[test]
    fn waits_instead_of_failing_until_a_line_is_complete() {
        // Redis only judges a header once its '\r' and one more byte are there.
        for input in [
            &b"*1\r\nX"[..],
            b"*1\r\nfoo",
            b"*x",
            b"*x\r",
            b"*1\r\n$x\r",
            b"*1\r\n$-1",
        ] {
            let mut buf = input.to_vec();
            let mut p = RespParser::new();
            assert_eq!(p.parse(&mut buf, &AUTH), Ok(()), "{input:?}");
            assert!(p.has_partial());
        }
    }

    #[test]
    fn too_big_count_strings() {
        // The limit counts every byte pending from the current position; > 64 KiB fails.
        let mut ok = b"*1".to_vec();
        ok.resize(PROTO_INLINE_MAX_SIZE, b'1');
        assert_eq!(parse_all(&ok, &AUTH), (vec![], None));
        ok.push(b'1');
        assert_eq!(err(&ok, &AUTH), ERR_TOO_BIG_MBULK);

        let mut ok = b"*1\r\n$".to_vec();
        ok.resize(4 + PROTO_INLINE_MAX_SIZE, b'1');
        assert_eq!(parse_all(&ok, &AUTH), (vec![], None));
        ok.push(b'1');
        assert_eq!(err(&ok, &AUTH), ERR_TOO_BIG_BULK);

        // Measured from after the arguments already parsed.
        let mut ok = b"*2\r\n$4\r\nECHO\r\n".to_vec();
        let base = ok.len();
        ok.resize(base + PROTO_INLINE_MAX_SIZE, b'X');
        assert_eq!(parse_all(&ok, &AUTH), (vec![], None));
        ok.push(b'X');
        assert_eq!(err(&ok, &AUTH), ERR_TOO_BIG_BULK);
    }

    #[test]
    fn proto_max_bulk_len_limit() {
        let limits = Limits {
            proto_max_bulk_len: 1024 * 1024,
            authenticated: true,
        };
        let mut buf = b"*1\r\n$1048576\r\n".to_vec();
        let mut p = RespParser::new();
        p.parse(&mut buf, &limits).unwrap();
        assert_eq!(p.needed_len(), Some(buf.len() + 1024 * 1024 + 2));
        assert_eq!(err(b"*1\r\n$1048577\r\n", &limits), ERR_INVALID_BULK);
        let tiny = Limits {
            proto_max_bulk_len: 3,
            authenticated: true,
        };
        assert_eq!(
            parse_all(b"*1\r\n$3\r\nabc\r\n", &tiny),
            (vec![cmd(&[b"abc"])], None)
        );
        assert_eq!(err(b"*1\r\n$4\r\nabcd\r\n", &tiny), ERR_INVALID_BULK);
    }

    #[test]
    fn unauthenticated_limits() {
        // Verified against redis-server 7.0.15 with requirepass set.
        assert_eq!(parse_all(b"*10\r\n", &NOAUTH), (vec![], None));
        assert_eq!(err(b"*11\r\n", &NOAUTH), ERR_UNAUTH_MBULK);
        assert_eq!(parse_all(b"*11\r\n", &AUTH), (vec![], None));
        assert_eq!(parse_all(b"*-20\r\n", &NOAUTH), (vec![], None));
        // The validity check comes first.
        assert_eq!(err(b"*2147483648\r\n", &NOAUTH), ERR_INVALID_MBULK);
        assert_eq!(parse_all(b"*1\r\n$16384\r\n", &NOAUTH), (vec![], None));
        assert_eq!(err(b"*1\r\n$16385\r\n", &NOAUTH), ERR_UNAUTH_BULK);
        assert_eq!(parse_all(b"*1\r\n$16385\r\n", &AUTH), (vec![], None));
        assert_eq!(err(b"*1\r\n$-1\r\n", &NOAUTH), ERR_INVALID_BULK);
        assert_eq!(err(b"*1\r\n$536870913\r\n", &NOAUTH), ERR_INVALID_BULK);
    }

    #[test]
    fn commands_before_an_error_stay_available() {
        let mut buf = b"*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n*x\r\n".to_vec();
        let mut p = RespParser::new();
        let e = p.parse(&mut buf, &AUTH).unwrap_err();
        assert_eq!(e.0, "Protocol error: expected '$', got '*'");
        assert_eq!(collect(&p, &buf), vec![cmd(&[b"PING"]), cmd(&[b"PING"])]);
        assert_eq!(p.consumed(), 28);
        // The error sticks.
        assert_eq!(p.parse(&mut buf, &AUTH).unwrap_err(), e);
        let (c, e) = parse_all(b"*1\r\n$4\r\nPING\r\nECHO \"a\r\n", &AUTH);
        assert_eq!(
            (c, e.as_deref()),
            (vec![cmd(&[b"PING"])], Some(ERR_UNBALANCED))
        );
    }

    #[test]
    fn string2ll_matches_redis() {
        let cases: &[&[u8]] = &[
            b"0",
            b"1",
            b"-1",
            b"-0",
            b"00",
            b"01",
            b"+1",
            b" 1",
            b"1 ",
            b"",
            b"-",
            b"9223372036854775807",
            b"9223372036854775808",
            b"-9223372036854775808",
            b"-9223372036854775809",
            b"18446744073709551616",
            b"123456789012345678901",
            b"12345678901234567890",
            b"1a",
            b"a1",
            b"99999999999999999999",
        ];
        for s in cases {
            assert_eq!(string2ll(s), string2ll_ref(s), "{s:?}");
        }
        assert_eq!(string2ll(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(string2ll(b"9223372036854775808"), None);
    }

    // ---------------------------------------------------------------- resumability

    /// A corpus of valid streams, each a mix of frame types.
    fn corpus() -> Vec<Vec<u8>> {
        let mut v = vec![
            b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n".to_vec(),
            b"*1\r\n$4\r\nPING\r\n*0\r\n*-1\r\nPING\r\n\r\nECHO \"a\\x41 b\" 'c\\'d'\n".to_vec(),
            b"*2\r\n$0\r\n\r\n$10\r\n0123456789\r\n  GET  x \r\n*1\r\n$1\r\n\n\r\n".to_vec(),
            b"*1\rX$4\rYPINGxx*1\r\n$2\r\nab\r\n".to_vec(),
        ];
        let mut big = Vec::new();
        for i in 0..20 {
            big.extend(resp(&[
                b"MSET",
                format!("k{i}").as_bytes(),
                &vec![b'z'; i * 7],
            ]));
            big.extend_from_slice(format!("INCR \"c\\t{i}\"\r\n").as_bytes());
        }
        v.push(big);
        v
    }

    #[test]
    fn every_split_point_gives_the_same_result() {
        for input in corpus() {
            let whole = parse_all(&input, &AUTH);
            assert_eq!(whole.1, None);
            assert_eq!(whole, reference(&[&input], &AUTH));
            for k in 0..=input.len() {
                let parts: [&[u8]; 2] = [&input[..k], &input[k..]];
                assert_eq!(feed(&parts, &AUTH, true), whole, "split at {k}");
                assert_eq!(feed(&parts, &AUTH, false), whole, "split at {k}, no drain");
                assert_eq!(feed(&parts, &NOAUTH, true), whole, "split at {k}, unauth");
            }
            let bytes: Vec<&[u8]> = input.chunks(1).collect();
            assert_eq!(feed(&bytes, &AUTH, true), whole, "byte by byte");
            assert_eq!(feed(&bytes, &AUTH, false), whole, "byte by byte, no drain");
        }
    }

    #[test]
    fn every_split_point_gives_the_same_error() {
        let cases: &[&[u8]] = &[
            b"*1\r\n$4\r\nPING\r\n*1\r\n$-1\r\n",
            b"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\nfoo\r\n",
            b"PING\r\n*x\r\n",
            b"*1\r\n$4\r\nPING\r\nECHO 'a'b\r\n",
            b"*1\r\n$4\r\nPING\r\n*12\r\n",
            b"*1\r\n$4\r\nPING\r\n*1\r\n$20000\r\n",
        ];
        for input in cases {
            let whole = parse_all(input, &NOAUTH);
            assert!(whole.1.is_some());
            assert_eq!(whole.0, vec![cmd(&[b"PING"])]);
            for k in 0..=input.len() {
                let parts: [&[u8]; 2] = [&input[..k], &input[k..]];
                assert_eq!(feed(&parts, &NOAUTH, true), whole, "{input:?} split at {k}");
                assert_eq!(
                    feed(&parts, &NOAUTH, false),
                    whole,
                    "{input:?} split at {k}"
                );
            }
        }
    }

    #[test]
    fn clear_complete_rebases_the_partial_command() {
        let full = [resp(&[b"GET", b"a"]), resp(&[b"SET", b"key", b"value"])].concat();
        let cut = full.len() - 5; // inside "value"
        let mut buf = full[..cut].to_vec();
        let mut p = RespParser::new();
        p.parse(&mut buf, &AUTH).unwrap();
        assert_eq!(collect(&p, &buf), vec![cmd(&[b"GET", b"a"])]);
        let first = p.consumed();
        assert_eq!(first, resp(&[b"GET", b"a"]).len());
        assert_eq!(p.partial_len(), cut - first);
        // Two arguments of SET are parsed already.
        assert_eq!(p.args.len(), 4);
        buf.drain(..first);
        p.clear_complete();
        assert_eq!(p.consumed(), 0);
        assert!(p.is_empty());
        assert_eq!(p.partial_len(), cut - first);
        let partial: Vec<&[u8]> = p.args.iter().map(|a| &buf[a.range()]).collect();
        assert_eq!(partial, [&b"SET"[..], b"key"]);
        // "va" of "value" is there: the payload starts 2 bytes before the end.
        assert_eq!(p.needed_len(), Some(buf.len() - 2 + 5 + 2));
        buf.extend_from_slice(&full[cut..]);
        p.parse(&mut buf, &AUTH).unwrap();
        assert_eq!(collect(&p, &buf), vec![cmd(&[b"SET", b"key", b"value"])]);
        assert_eq!(p.consumed(), buf.len());
        assert_eq!(p.needed_len(), None);
        buf.clear();
        p.clear_complete();
        assert!(!p.has_partial());
        assert!(p.args.is_empty() && p.ends.is_empty());
    }

    #[test]
    fn clear_complete_rebases_a_pending_long_line() {
        // The resume point of a line search is rebased too.
        let mut buf = b"PING\r\nECHO aaaa".to_vec();
        let mut p = RespParser::new();
        p.parse(&mut buf, &AUTH).unwrap();
        assert_eq!(p.scan_from, buf.len());
        buf.drain(..p.consumed());
        p.clear_complete();
        assert_eq!(p.scan_from, buf.len());
        buf.extend_from_slice(b"bb\r\n");
        p.parse(&mut buf, &AUTH).unwrap();
        assert_eq!(collect(&p, &buf), vec![cmd(&[b"ECHO", b"aaaabb"])]);
    }

    /// A command of `n` one-byte arguments.
    fn many_args(n: usize) -> Vec<u8> {
        let mut v = format!("*{n}\r\n").into_bytes();
        for i in 0..n {
            v.extend_from_slice(b"$1\r\n");
            v.push(b'a' + (i % 26) as u8);
            v.extend_from_slice(b"\r\n");
        }
        v
    }

    #[test]
    fn huge_argument_count_resumes_without_rescanning() {
        let n = 200_000;
        let mut input = resp(&[b"PING"]);
        input.extend(many_args(n));
        input.extend(resp(&[b"GET", b"k"]));
        let mut p = RespParser::new();
        let mut buf = Vec::new();
        let mut done = Vec::new();
        for chunk in input.chunks(16 * 1024) {
            buf.extend_from_slice(chunk);
            p.parse(&mut buf, &AUTH).unwrap();
            // Everything before the last few bytes has been parsed: the next call starts
            // there, not at the start of the command.
            assert!(buf.len() - p.pos < 8, "pos {} of {}", p.pos, buf.len());
            for i in 0..p.len() {
                let c = p.command(i);
                done.push((
                    c.len(),
                    buf[c[0].range()].to_vec(),
                    buf[c[c.len() - 1].range()].to_vec(),
                ));
            }
            buf.drain(..p.consumed());
            p.clear_complete();
        }
        let last = vec![b'a' + ((n - 1) % 26) as u8];
        assert_eq!(
            done,
            vec![
                (1, b"PING".to_vec(), b"PING".to_vec()),
                (n, b"a".to_vec(), last),
                (2, b"GET".to_vec(), b"k".to_vec())
            ]
        );
        assert!(buf.is_empty() && !p.has_partial());
    }

    #[test]
    fn million_arguments_in_small_reads_is_linear() {
        // 7 MB in 512-byte reads: ~14k parse calls. Re-scanning the partial command on each
        // call would touch ~50 GB and not finish; resuming is a single linear pass.
        let n = 1_000_000;
        let input = many_args(n);
        let t = std::time::Instant::now();
        let mut p = RespParser::new();
        let mut buf = Vec::with_capacity(input.len());
        let mut got = 0;
        for (i, chunk) in input.chunks(512).enumerate() {
            buf.extend_from_slice(chunk);
            p.parse(&mut buf, &AUTH).unwrap();
            if !p.is_empty() {
                got = p.command(0).len();
            }
            // Checked as it goes, so a quadratic parser fails instead of hanging the suite.
            let spent = t.elapsed();
            assert!(
                spent < std::time::Duration::from_secs(20),
                "{spent:?} at read {i}"
            );
        }
        assert_eq!(got, n);
        assert_eq!(p.consumed(), input.len());
    }

    #[test]
    fn big_bulk_in_small_reads() {
        let payload: Vec<u8> = (0..300_000u32).map(|i| (i * 7) as u8).collect();
        let input = resp(&[b"SET", b"k", &payload]);
        let mut p = RespParser::new();
        let mut buf = Vec::new();
        for chunk in input.chunks(16 * 1024) {
            buf.extend_from_slice(chunk);
            p.parse(&mut buf, &AUTH).unwrap();
            if p.is_empty() {
                assert_eq!(p.needed_len(), Some(input.len()));
            }
        }
        assert_eq!(collect(&p, &buf), vec![cmd(&[b"SET", b"k", &payload])]);
    }

    // ---------------------------------------------------------------- fuzz

    /// xorshift64*: deterministic, no dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn random_stream(rng: &mut Rng) -> Vec<u8> {
        const BYTES: &[u8] = b"*$\r\n\r\n0123456789-+ \t\x0b\x00\"'\\xaF\xe9";
        let mut v = Vec::new();
        for _ in 0..rng.below(8) {
            match rng.below(6) {
                0 => {
                    let args: Vec<Vec<u8>> = (0..rng.below(4))
                        .map(|_| {
                            (0..rng.below(5))
                                .map(|_| BYTES[rng.below(BYTES.len())])
                                .collect()
                        })
                        .collect();
                    let refs: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
                    v.extend(resp(&refs));
                }
                1 => {
                    for _ in 0..rng.below(12) {
                        v.push(BYTES[rng.below(BYTES.len())]);
                    }
                    v.extend_from_slice(b"\r\n");
                }
                2 => v.extend_from_slice(format!("*{}\r\n", rng.below(14) as i64 - 2).as_bytes()),
                3 => v.extend_from_slice(format!("${}\r\n", rng.below(6) as i64 - 1).as_bytes()),
                4 => {
                    let words = [
                        "SET", "\"a b\"", "'c\\'d'", "\"\\x4", "\\n", "\"\\\"\"", "x",
                    ];
                    for _ in 0..rng.below(4) {
                        v.extend_from_slice(words[rng.below(words.len())].as_bytes());
                        v.push(b" \t"[rng.below(2)]);
                    }
                    v.extend_from_slice([&b"\r\n"[..], b"\n"][rng.below(2)]);
                }
                _ => {
                    for _ in 0..rng.below(6) {
                        v.push(BYTES[rng.below(BYTES.len())]);
                    }
                }
            }
        }
        v
    }

    #[test]
    fn fuzz_against_reference_model() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..30_000 {
            let input = random_stream(&mut rng);
            let limits = Limits {
                proto_max_bulk_len: [3u64, 1 << 20][rng.below(2)],
                authenticated: rng.below(2) == 0,
            };
            let mut chunks = Vec::new();
            let mut at = 0;
            while at < input.len() {
                let n = 1 + rng.below(input.len() - at);
                chunks.push(&input[at..at + n]);
                at += n;
            }
            let want = reference(&chunks, &limits);
            assert_eq!(
                feed(&chunks, &limits, true),
                want,
                "round {round}: {input:?} {chunks:?}"
            );
            assert_eq!(
                feed(&chunks, &limits, false),
                want,
                "round {round} no drain"
            );
        }
    }
}
