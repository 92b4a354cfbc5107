//! The zero-copy RESP request parser: multibulk and inline commands as byte ranges of the read buffer.

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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError(pub String);

/// A resumable parser for one connection's request stream.
#[derive(Debug, Default)]
pub struct RespParser {}

impl RespParser {
    /// A parser with nothing parsed.
    pub fn new() -> Self {
        RespParser {}
    }

    /// Parses every complete command in `buf[self.consumed()..]`.
    pub fn parse(&mut self, buf: &mut [u8], limits: &Limits) -> Result<(), ProtocolError> {
        let _ = (buf, limits);
        todo!("parser: being written")
    }

    /// Complete commands parsed since the last `clear_complete`.
    pub fn len(&self) -> usize {
        todo!("parser: being written")
    }

    /// True when no complete command is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The arguments of complete command `i`.
    pub fn command(&self, i: usize) -> &[Arg] {
        let _ = i;
        todo!("parser: being written")
    }

    /// Bytes at the front of the buffer taken by complete (or skipped empty) commands.
    pub fn consumed(&self) -> usize {
        todo!("parser: being written")
    }

    /// Forgets the complete commands once the caller removed `consumed()` bytes from the buffer front.
    pub fn clear_complete(&mut self) {
        todo!("parser: being written")
    }
}
