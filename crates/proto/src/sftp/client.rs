//! The client half of SFTP v3 as plain data: the requests the gateway's own file transfers
//! send (the web UI's upload and download), and the replies they read back.
//!
//! Requests are encoded whole; replies are framed from bytes chunked in any way by
//! [`Replies`], which refuses a packet longer than [`MAX_PACKET_LEN`] rather than
//! buffering it.

use std::fmt;

use super::MAX_PACKET_LEN;
use super::frame::{CLOSE, DATA, HANDLE, INIT, OPEN, READ, STATUS, VERSION, WRITE};
use super::packet::Packet;

/// SSH_FXF_READ.
pub const OPEN_READ: u32 = 0x01;
/// SSH_FXF_WRITE | SSH_FXF_CREAT | SSH_FXF_TRUNC: write a file from its start, made if missing.
pub const OPEN_REPLACE: u32 = 0x02 | 0x08 | 0x10;
/// SSH_FX_EOF: a read past the end.
pub const FX_EOF: u32 = 1;
/// Largest READ or WRITE payload sent: what every SFTP server accepts.
pub const CHUNK: usize = 32 * 1024;

/// `SSH_FXP_INIT` for version 3.
pub fn init() -> Vec<u8> {
    Packet::new(INIT).u32(3).build()
}

/// `SSH_FXP_OPEN` with no attributes.
pub fn open(id: u32, path: &str, pflags: u32) -> Vec<u8> {
    Packet::new(OPEN).u32(id).string(path).u32(pflags).u32(0).build()
}

/// `SSH_FXP_READ` of up to `len` bytes at `offset`.
pub fn read(id: u32, handle: &[u8], offset: u64, len: u32) -> Vec<u8> {
    Packet::new(READ).u32(id).string(handle).u64(offset).u32(len).build()
}

/// `SSH_FXP_WRITE` of `data` at `offset`.
pub fn write(id: u32, handle: &[u8], offset: u64, data: &[u8]) -> Vec<u8> {
    Packet::new(WRITE).u32(id).string(handle).u64(offset).string(data).build()
}

/// `SSH_FXP_CLOSE`.
pub fn close(id: u32, handle: &[u8]) -> Vec<u8> {
    Packet::new(CLOSE).u32(id).string(handle).build()
}

/// One reply from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `SSH_FXP_VERSION`.
    Version(u32),
    /// `SSH_FXP_STATUS`: `code` 0 is success.
    Status {
        /// The request's id.
        id: u32,
        /// SSH_FX_* code.
        code: u32,
        /// The server's message, for people.
        message: String,
    },
    /// `SSH_FXP_HANDLE`.
    Handle {
        /// The request's id.
        id: u32,
        /// The opaque handle.
        handle: Vec<u8>,
    },
    /// `SSH_FXP_DATA`.
    Data {
        /// The request's id.
        id: u32,
        /// The bytes read.
        data: Vec<u8>,
    },
    /// Any other reply, by type and id.
    Other {
        /// Packet type.
        kind: u8,
        /// The request's id (0 when the packet is too short to carry one).
        id: u32,
    },
}

impl Reply {
    /// The id of the request answered (0 for VERSION).
    pub fn id(&self) -> u32 {
        match self {
            Reply::Version(_) => 0,
            Reply::Status { id, .. } | Reply::Handle { id, .. } | Reply::Data { id, .. } | Reply::Other { id, .. } => {
                *id
            }
        }
    }
}

/// The server broke the framing; the stream cannot be read further.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadReply(String);

impl fmt::Display for BadReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad SFTP reply: {}", self.0)
    }
}

impl std::error::Error for BadReply {}

/// Frames replies from the server's byte stream.
#[derive(Debug, Default)]
pub struct Replies {
    buf: Vec<u8>,
}

impl Replies {
    /// Adds bytes from the server.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole reply, if one has arrived.
    pub fn next_reply(&mut self) -> Result<Option<Reply>, BadReply> {
        let Some(len) = self.buf.get(..4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])) else {
            return Ok(None);
        };
        if len == 0 || len > MAX_PACKET_LEN {
            return Err(BadReply(format!("packet length {len}")));
        }
        let end = 4 + len as usize;
        if self.buf.len() < end {
            return Ok(None);
        }
        let reply = parse(&self.buf[4..end]);
        self.buf.drain(..end);
        reply.map(Some)
    }
}

fn parse(packet: &[u8]) -> Result<Reply, BadReply> {
    let mut r = Reader(&packet[1..]);
    let kind = packet[0];
    let short = || BadReply(format!("packet type {kind} too short"));
    Ok(match kind {
        VERSION => Reply::Version(r.u32().ok_or_else(short)?),
        STATUS => {
            let id = r.u32().ok_or_else(short)?;
            let code = r.u32().ok_or_else(short)?;
            // Version 3 servers send a message and language tag; some omit both.
            let message = r.string().map(|m| String::from_utf8_lossy(m).into_owned()).unwrap_or_default();
            Reply::Status { id, code, message }
        }
        HANDLE => {
            let id = r.u32().ok_or_else(short)?;
            Reply::Handle { id, handle: r.string().ok_or_else(short)?.to_vec() }
        }
        DATA => {
            let id = r.u32().ok_or_else(short)?;
            Reply::Data { id, data: r.string().ok_or_else(short)?.to_vec() }
        }
        kind => Reply::Other { kind, id: r.u32().unwrap_or(0) },
    })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u32(&mut self) -> Option<u32> {
        let (head, rest) = self.0.split_first_chunk::<4>()?;
        self.0 = rest;
        Some(u32::from_be_bytes(*head))
    }

    fn string(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        let bytes = self.0.get(..len)?;
        self.0 = &self.0[len..];
        Some(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::super::encode;
    use super::*;

    fn replies(bytes: &[u8]) -> Vec<Reply> {
        let mut framer = Replies::default();
        let mut out = Vec::new();
        // One byte at a time: replies split anywhere still frame.
        for b in bytes {
            framer.feed(std::slice::from_ref(b));
            while let Some(reply) = framer.next_reply().unwrap() {
                out.push(reply);
            }
        }
        out
    }

    #[test]
    fn replies_frame_across_any_split() {
        let mut stream = encode::version();
        stream.extend(encode::handle(1, "h0"));
        stream.extend(encode::data(2, b"hello"));
        stream.extend(encode::status(3, FX_EOF));
        assert_eq!(
            replies(&stream),
            vec![
                Reply::Version(3),
                Reply::Handle { id: 1, handle: b"h0".to_vec() },
                Reply::Data { id: 2, data: b"hello".to_vec() },
                Reply::Status { id: 3, code: FX_EOF, message: "message".into() },
            ]
        );
    }

    #[test]
    fn requests_are_what_the_watcher_reads() {
        // The gateway's own requests pass the relay's SFTP watcher like any client's.
        let mut watcher = super::super::SftpWatcher::new();
        let mut events = Vec::new();
        // In the order a client and server take turns: a request, then its reply.
        let turns = [
            (init(), encode::version()),
            (open(1, "up.bin", OPEN_REPLACE), encode::handle(1, "h0")),
            (write(2, b"h0", 0, b"abc"), encode::status(2, 0)),
            (close(3, b"h0"), encode::status(3, 0)),
        ];
        for (request, reply) in turns {
            events.extend(watcher.client_bytes(&request));
            events.extend(watcher.server_bytes(&reply));
        }
        let kinds: Vec<&str> = events.iter().map(|e| e.kind()).collect();
        assert_eq!(kinds, ["file.open", "file.close"]);
        assert_eq!(events[1].path(), "up.bin");
        assert!(!watcher.desynced());
    }

    #[test]
    fn a_bad_length_is_refused_not_buffered() {
        let mut framer = Replies::default();
        framer.feed(&(MAX_PACKET_LEN + 1).to_be_bytes());
        assert!(framer.next_reply().is_err());
        let mut framer = Replies::default();
        framer.feed(&[0, 0, 0, 0]);
        assert!(framer.next_reply().is_err());
    }

    #[test]
    fn short_packets_are_errors_and_a_bare_status_has_no_message() {
        let mut framer = Replies::default();
        framer.feed(&[0, 0, 0, 3, HANDLE, 0, 0]);
        assert!(framer.next_reply().is_err());
        let mut framer = Replies::default();
        framer.feed(&[0, 0, 0, 9, STATUS, 0, 0, 0, 7, 0, 0, 0, 2]);
        assert_eq!(framer.next_reply().unwrap(), Some(Reply::Status { id: 7, code: 2, message: String::new() }));
    }

    #[test]
    fn read_request_layout() {
        let packet = read(9, b"hd", 5, CHUNK as u32);
        assert_eq!(&packet[..5], &[0, 0, 0, 23, READ]);
        assert_eq!(&packet[5..9], &9u32.to_be_bytes());
        assert_eq!(&packet[9..15], &[0, 0, 0, 2, b'h', b'd']);
        assert_eq!(&packet[15..23], &5u64.to_be_bytes());
        assert_eq!(&packet[23..], &(CHUNK as u32).to_be_bytes());
    }
}
