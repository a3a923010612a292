//! Packet framing for one direction: `uint32 length, byte type, body`, keeping only the
//! head of each body (the fields the watcher reads) and counting past the rest.

use super::MAX_PACKET_LEN;

pub(super) const INIT: u8 = 1;
pub(super) const OPEN: u8 = 3;
pub(super) const CLOSE: u8 = 4;
pub(super) const READ: u8 = 5;
pub(super) const WRITE: u8 = 6;
pub(super) const SETSTAT: u8 = 9;
pub(super) const FSETSTAT: u8 = 10;
pub(super) const REMOVE: u8 = 13;
pub(super) const MKDIR: u8 = 14;
pub(super) const RMDIR: u8 = 15;
pub(super) const RENAME: u8 = 18;
pub(super) const EXTENDED: u8 = 200;

pub(super) const VERSION: u8 = 2;
pub(super) const STATUS: u8 = 101;
pub(super) const HANDLE: u8 = 102;
pub(super) const DATA: u8 = 103;
pub(super) const NAME: u8 = 104;
pub(super) const ATTRS: u8 = 105;
pub(super) const EXTENDED_REPLY: u8 = 201;

/// Longest handle the spec allows; a longer one is not tracked.
pub(super) const MAX_HANDLE: usize = 256;
/// Head kept of a request naming paths: two PATH_MAX paths, an extension name, attrs.
const PATH_HEAD: usize = 2 * 4096 + 256;
/// uint32 id, string handle.
const HANDLE_HEAD: usize = 4 + 4 + MAX_HANDLE;
/// A handle request followed by uint64 offset and uint32 length (READ, or WRITE's data length).
const HANDLE_OFFSET_LEN_HEAD: usize = HANDLE_HEAD + 8 + 4;
/// FSETSTAT: a handle and the fixed part of attrs (flags, size, uid, gid, mode, times).
const FSETSTAT_HEAD: usize = HANDLE_HEAD + 4 + 8 + 4 + 4 + 4 + 4 + 4;

/// How many body bytes of a client packet of this type the watcher reads.
pub(super) fn request_head(kind: u8) -> usize {
    match kind {
        OPEN | SETSTAT | REMOVE | MKDIR | RMDIR | RENAME | EXTENDED => PATH_HEAD,
        CLOSE => HANDLE_HEAD,
        READ | WRITE => HANDLE_OFFSET_LEN_HEAD,
        FSETSTAT => FSETSTAT_HEAD,
        // No request id.
        INIT => 0,
        // STAT, OPENDIR, READDIR, REALPATH, SYMLINK, ... are not audited.
        _ => 0,
    }
}

/// How many body bytes of a server packet of this type the watcher reads.
pub(super) fn response_head(kind: u8) -> usize {
    match kind {
        // id, then the error code or the data length.
        STATUS | DATA => 8,
        HANDLE => HANDLE_HEAD,
        // Only the id, to forget the request it answers.
        NAME | ATTRS | EXTENDED_REPLY => 4,
        // No request id.
        VERSION => 0,
        _ => 0,
    }
}

/// Splits one direction of the stream into packets; memory is the largest head, not the packet.
#[derive(Debug)]
pub(super) struct Framer {
    head_len: fn(u8) -> usize,
    buf: Vec<u8>,
    phase: Phase,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading the length and type into `buf`.
    Header,
    /// Reading the first `head` bytes of the body into `buf`.
    Head { kind: u8, body_len: u32, head: usize },
    /// Counting past this many more body bytes.
    Skip(u32),
    /// A length broke the framing; nothing after it can be trusted.
    Desynced,
}

const HEADER_LEN: usize = 5;

impl Framer {
    /// A framer that keeps `head_len(type)` body bytes of each packet.
    pub(super) fn new(head_len: fn(u8) -> usize) -> Self {
        Self { head_len, buf: Vec::new(), phase: Phase::Header }
    }

    /// Whether a bad length stopped this direction.
    pub(super) fn desynced(&self) -> bool {
        self.phase == Phase::Desynced
    }

    /// Bytes held for the current packet.
    #[cfg(test)]
    pub(super) fn buffered(&self) -> usize {
        self.buf.capacity()
    }

    /// Reads `data`, calling `on_packet(type, head, body_len)` once per packet, as soon as
    /// its head is in.
    pub(super) fn feed(&mut self, mut data: &[u8], mut on_packet: impl FnMut(u8, &[u8], u32)) {
        while !data.is_empty() {
            match self.phase {
                Phase::Desynced => return,
                Phase::Skip(left) => {
                    let n = data.len().min(left as usize);
                    data = &data[n..];
                    // n <= left, which is a u32.
                    let left = left - n as u32;
                    self.phase = if left == 0 { Phase::Header } else { Phase::Skip(left) };
                }
                Phase::Header => {
                    data = self.fill(data, HEADER_LEN);
                    if self.buf.len() == HEADER_LEN {
                        self.start_body(&mut on_packet);
                    }
                }
                Phase::Head { kind, body_len, head } => {
                    data = self.fill(data, head);
                    if self.buf.len() == head {
                        self.end_head(kind, body_len, &mut on_packet);
                    }
                }
            }
        }
    }

    /// Moves bytes from `data` into `buf` until it holds `want`; returns the rest.
    fn fill<'a>(&mut self, data: &'a [u8], want: usize) -> &'a [u8] {
        let n = want.saturating_sub(self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        &data[n..]
    }

    fn start_body(&mut self, on_packet: &mut impl FnMut(u8, &[u8], u32)) {
        let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        let kind = self.buf[4];
        self.buf.clear();
        if len == 0 || len > MAX_PACKET_LEN {
            self.phase = Phase::Desynced;
            self.buf = Vec::new();
            return;
        }
        let body_len = len - 1;
        let head = (self.head_len)(kind).min(body_len as usize);
        self.phase = Phase::Head { kind, body_len, head };
        if head == 0 {
            self.end_head(kind, body_len, on_packet);
        }
    }

    fn end_head(&mut self, kind: u8, body_len: u32, on_packet: &mut impl FnMut(u8, &[u8], u32)) {
        on_packet(kind, &self.buf, body_len);
        // The head is at most body_len bytes.
        let left = body_len - self.buf.len() as u32;
        self.buf.clear();
        self.phase = if left == 0 { Phase::Header } else { Phase::Skip(left) };
    }
}

/// Reads SSH wire types from a packet head; `None` once a field runs past the end.
pub(super) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes read so far.
    pub(super) fn pos(&self) -> usize {
        self.pos
    }

    pub(super) fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let field = self.buf.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(field)
    }

    pub(super) fn u32(&mut self) -> Option<u32> {
        self.bytes(4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(super) fn u64(&mut self) -> Option<u64> {
        let (high, low) = (self.u32()?, self.u32()?);
        Some(u64::from(high) << 32 | u64::from(low))
    }

    pub(super) fn string(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()?;
        self.bytes(len as usize)
    }
}
