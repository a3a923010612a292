//! An SFTP v3 watcher (draft-ietf-secsh-filexfer-02, what OpenSSH speaks): it reads
//! copies of the two byte streams of an sftp channel and reports file operations as
//! audit events. The relay forwards the bytes itself; nothing here can stop or alter them.
//!
//! Events come from the server's reply, so they carry its status: `file.open` on the
//! HANDLE (or the error STATUS), `file.close` on the CLOSE's STATUS, `file.remove`,
//! `file.rename`, `file.mkdir`, `file.rmdir` and `file.setstat` on their STATUS.
//! `bytes_written` counts the data of every WRITE the client sent on the handle, whatever
//! the server answered; `bytes_read` counts the data of every DATA reply to a READ.
//! When the channel ends, [`SftpWatcher::finish`] reports requests never answered and
//! handles never closed, with the status `channel closed`.
//!
//! Memory stays small whatever the peers send: only the first bytes of a packet that
//! matter are buffered (never WRITE or DATA payloads), and the tables of open handles and
//! unanswered requests are capped. A declared length of zero or above 1 MiB ends the
//! parsing of that direction for good ([`SftpWatcher::desynced`]).

use std::fmt;

use serde_json::Value;

use frame::Framer;
use track::Tracker;

pub mod client;
mod frame;
mod packet;
mod track;

#[cfg(test)]
mod encode;
#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;

/// Longest packet length (after the length field) the watcher follows; a longer one desyncs.
pub const MAX_PACKET_LEN: u32 = 1 << 20;

/// Watches one sftp channel and turns its requests and replies into [`FileEvent`]s.
#[derive(Debug)]
pub struct SftpWatcher {
    client: Framer,
    server: Framer,
    tracker: Tracker,
}

impl SftpWatcher {
    /// A watcher for a channel whose sftp subsystem has just started.
    pub fn new() -> Self {
        Self {
            client: Framer::new(frame::request_head),
            server: Framer::new(frame::response_head),
            tracker: Tracker::default(),
        }
    }

    /// Reads bytes the user sent towards the node, chunked in any way; events wait for replies.
    pub fn client_bytes(&mut self, data: &[u8]) -> Vec<FileEvent> {
        let tracker = &mut self.tracker;
        self.client.feed(data, |kind, head, body_len| tracker.request(kind, head, body_len));
        Vec::new()
    }

    /// Reads bytes the node sent towards the user, chunked in any way.
    pub fn server_bytes(&mut self, data: &[u8]) -> Vec<FileEvent> {
        let mut events = Vec::new();
        let tracker = &mut self.tracker;
        self.server.feed(data, |kind, head, body_len| tracker.response(kind, head, body_len, &mut events));
        events
    }

    /// The channel closed: reports unanswered requests, then handles still open, oldest first.
    pub fn finish(&mut self) -> Vec<FileEvent> {
        self.tracker.finish()
    }

    /// Whether either direction broke the framing, so later events may be missing.
    pub fn desynced(&self) -> bool {
        self.client.desynced() || self.server.desynced()
    }
}

impl Default for SftpWatcher {
    fn default() -> Self {
        Self::new()
    }
}

/// A file operation seen on an sftp channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileEvent {
    /// A file was opened (or the server refused to open it).
    Open {
        /// The path the client asked for.
        path: String,
        /// The SSH_FXF_* open flags.
        flags: OpenFlags,
        /// The server's answer.
        status: Status,
    },
    /// An open file was closed, with what moved through its handle.
    Close {
        /// The path it was opened with.
        path: String,
        /// Bytes the server returned to READs.
        bytes_read: u64,
        /// Bytes the client sent in WRITEs.
        bytes_written: u64,
        /// The server's answer to the CLOSE.
        status: Status,
    },
    /// A file removal.
    Remove {
        /// The path removed.
        path: String,
        /// The server's answer.
        status: Status,
    },
    /// A rename, plain or `posix-rename@openssh.com`.
    Rename {
        /// The old path.
        path: String,
        /// The new path.
        new_path: String,
        /// The server's answer.
        status: Status,
    },
    /// A directory creation.
    Mkdir {
        /// The directory created.
        path: String,
        /// The server's answer.
        status: Status,
    },
    /// A directory removal.
    Rmdir {
        /// The directory removed.
        path: String,
        /// The server's answer.
        status: Status,
    },
    /// A change of attributes: SETSTAT, FSETSTAT or `lsetstat@openssh.com`.
    Setstat {
        /// The path changed (for FSETSTAT, the path its handle was opened with).
        path: String,
        /// The attributes set, e.g. `mode=0644,uid=0,gid=0`.
        attrs: String,
        /// The server's answer.
        status: Status,
    },
}

impl FileEvent {
    /// The audit event type, e.g. `file.open`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Open { .. } => "file.open",
            Self::Close { .. } => "file.close",
            Self::Remove { .. } => "file.remove",
            Self::Rename { .. } => "file.rename",
            Self::Mkdir { .. } => "file.mkdir",
            Self::Rmdir { .. } => "file.rmdir",
            Self::Setstat { .. } => "file.setstat",
        }
    }

    /// The audit event's fields: `path` first, `status` last.
    pub fn fields(&self) -> Vec<(&'static str, Value)> {
        let text = |s: &str| Value::String(s.to_owned());
        let mut fields = vec![("path", text(self.path()))];
        match self {
            Self::Open { flags, .. } => fields.push(("flags", Value::String(flags.to_string()))),
            Self::Close { bytes_read, bytes_written, .. } => {
                fields.push(("bytes_read", Value::from(*bytes_read)));
                fields.push(("bytes_written", Value::from(*bytes_written)));
            }
            Self::Rename { new_path, .. } => fields.push(("new_path", text(new_path))),
            Self::Setstat { attrs, .. } => fields.push(("attrs", text(attrs))),
            Self::Remove { .. } | Self::Mkdir { .. } | Self::Rmdir { .. } => {}
        }
        fields.push(("status", Value::String(self.status().to_string())));
        fields
    }

    /// The path the operation was on.
    pub fn path(&self) -> &str {
        match self {
            Self::Open { path, .. }
            | Self::Close { path, .. }
            | Self::Remove { path, .. }
            | Self::Rename { path, .. }
            | Self::Mkdir { path, .. }
            | Self::Rmdir { path, .. }
            | Self::Setstat { path, .. } => path,
        }
    }

    /// The server's answer.
    pub fn status(&self) -> Status {
        match self {
            Self::Open { status, .. }
            | Self::Close { status, .. }
            | Self::Remove { status, .. }
            | Self::Rename { status, .. }
            | Self::Mkdir { status, .. }
            | Self::Rmdir { status, .. }
            | Self::Setstat { status, .. } => *status,
        }
    }

    fn set_status(&mut self, new: Status) {
        match self {
            Self::Open { status, .. }
            | Self::Close { status, .. }
            | Self::Remove { status, .. }
            | Self::Rename { status, .. }
            | Self::Mkdir { status, .. }
            | Self::Rmdir { status, .. }
            | Self::Setstat { status, .. } => *status = new,
        }
    }
}

/// How the server answered a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Success (a HANDLE, or STATUS SSH_FX_OK).
    Ok,
    /// A STATUS with this SSH_FX_* error code.
    Error(u32),
    /// The reply was of the wrong type or too short, or the watcher missed it.
    Unknown,
    /// No reply came before the channel closed.
    ChannelClosed,
}

impl Status {
    /// The status of a STATUS reply with this code.
    pub fn from_code(code: u32) -> Self {
        if code == 0 { Self::Ok } else { Self::Error(code) }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ok => f.write_str("ok"),
            Self::Error(code) => write!(f, "error code {code}"),
            Self::Unknown => f.write_str("unknown"),
            Self::ChannelClosed => f.write_str("channel closed"),
        }
    }
}

/// SSH_FXF_* open flags; displays as e.g. `read,write,creat,trunc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpenFlags(pub u32);

const FLAG_NAMES: [(u32, &str); 6] =
    [(0x01, "read"), (0x02, "write"), (0x04, "append"), (0x08, "creat"), (0x10, "trunc"), (0x20, "excl")];

impl fmt::Display for OpenFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("none");
        }
        let mut names: Vec<String> =
            FLAG_NAMES.iter().filter(|(bit, _)| self.0 & bit != 0).map(|(_, name)| (*name).to_owned()).collect();
        let unknown = self.0 & !FLAG_NAMES.iter().fold(0, |all, (bit, _)| all | bit);
        if unknown != 0 {
            names.push(format!("{unknown:#x}"));
        }
        f.write_str(&names.join(","))
    }
}
