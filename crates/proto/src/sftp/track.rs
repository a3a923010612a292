//! Request and reply bookkeeping: the requests awaiting an answer, by id, and the open
//! file handles, each table capped in entries and bytes.

use std::borrow::Borrow;
use std::collections::BTreeMap;

use super::frame::{self, Reader};
use super::{FileEvent, OpenFlags, Status};

/// Most entries in each table; past it new requests or handles go untracked.
pub(super) const MAX_ENTRIES: usize = 4096;
/// Most bytes (keys, paths, and an overhead per entry) held in each table.
pub(super) const MAX_TABLE_BYTES: usize = 2 << 20;
/// What an entry costs beyond its strings.
const ENTRY_OVERHEAD: usize = 64;

/// The status an event keeps until its reply arrives.
const UNANSWERED: Status = Status::ChannelClosed;

/// What the watcher knows of the session so far.
#[derive(Debug, Default)]
pub(super) struct Tracker {
    pending: Table<u32, Pending>,
    handles: Table<Vec<u8>, OpenFile>,
    opened: u64,
}

#[derive(Debug)]
enum Pending {
    /// OPEN, REMOVE, RENAME, ...: the event to report once the reply sets its status.
    Event(FileEvent),
    /// A READ on this handle; its DATA counts as read.
    Read(Vec<u8>),
    /// A CLOSE of this handle.
    Close(Vec<u8>),
}

#[derive(Debug)]
struct OpenFile {
    path: String,
    bytes_read: u64,
    bytes_written: u64,
    /// Opening order, so `finish` reports the oldest first.
    seq: u64,
}

impl OpenFile {
    fn close(self, status: Status) -> FileEvent {
        let Self { path, bytes_read, bytes_written, .. } = self;
        FileEvent::Close { path, bytes_read, bytes_written, status }
    }
}

impl Tracker {
    /// A client packet: remembers what the reply will answer, or counts written bytes.
    pub(super) fn request(&mut self, kind: u8, head: &[u8], body_len: u32) {
        let mut r = Reader::new(head);
        let Some(id) = r.u32() else { return };
        if kind == frame::WRITE {
            self.count_write(&mut r, body_len);
        } else if let Some(pending) = self.parse_request(kind, &mut r) {
            self.pending.insert(id, pending);
        }
    }

    /// A server packet: settles the request it answers, pushing any event that completes.
    pub(super) fn response(&mut self, kind: u8, head: &[u8], body_len: u32, events: &mut Vec<FileEvent>) {
        let mut r = Reader::new(head);
        let Some(id) = r.u32() else { return };
        let Some(pending) = self.pending.remove(&id) else { return };
        match pending {
            Pending::Event(mut event) => {
                let status = match (kind, &event) {
                    (frame::STATUS, _) => status(&mut r),
                    (frame::HANDLE, FileEvent::Open { path, .. }) => match r.string() {
                        Some(handle) => {
                            let path = path.clone();
                            self.open(handle, path, events);
                            Status::Ok
                        }
                        None => Status::Unknown,
                    },
                    _ => Status::Unknown,
                };
                event.set_status(status);
                events.push(event);
            }
            Pending::Read(handle) => {
                if let (frame::DATA, Some(len), Some(file)) = (kind, r.u32(), self.handles.get_mut(&handle)) {
                    // A declared length past the packet's end counts only what the packet holds.
                    file.bytes_read += u64::from(len.min(body_len.saturating_sub(8)));
                }
            }
            Pending::Close(handle) => {
                let status = if kind == frame::STATUS { status(&mut r) } else { Status::Unknown };
                if let Some(file) = self.handles.remove(handle.as_slice()) {
                    events.push(file.close(status));
                }
            }
        }
    }

    /// The channel closed: requests still unanswered, then handles still open.
    pub(super) fn finish(&mut self) -> Vec<FileEvent> {
        let pending = self.pending.drain().into_values();
        let mut events: Vec<FileEvent> = pending
            .filter_map(|p| match p {
                Pending::Event(event) => Some(event),
                Pending::Read(_) | Pending::Close(_) => None,
            })
            .collect();
        let mut open: Vec<OpenFile> = self.handles.drain().into_values().collect();
        open.sort_by_key(|file| file.seq);
        events.extend(open.into_iter().map(|file| file.close(Status::ChannelClosed)));
        events
    }

    fn open(&mut self, handle: &[u8], path: String, events: &mut Vec<FileEvent>) {
        self.opened += 1;
        let file = OpenFile { path, bytes_read: 0, bytes_written: 0, seq: self.opened };
        // The server reuses a handle only after a CLOSE whose reply went untracked.
        if let Some(old) = self.handles.insert(handle.to_vec(), file) {
            events.push(old.close(Status::Unknown));
        }
    }

    fn count_write(&mut self, r: &mut Reader<'_>, body_len: u32) -> Option<()> {
        let handle = r.string()?;
        r.u64()?;
        let declared = r.u32()?;
        let room = (body_len as usize).saturating_sub(r.pos());
        let file = self.handles.get_mut(handle)?;
        file.bytes_written += u64::from(declared).min(room as u64);
        Some(())
    }

    fn parse_request(&self, kind: u8, r: &mut Reader<'_>) -> Option<Pending> {
        let path = |r: &mut Reader<'_>| r.string().map(lossy);
        let event = match kind {
            frame::OPEN => FileEvent::Open { path: path(r)?, flags: OpenFlags(r.u32()?), status: UNANSWERED },
            frame::CLOSE => return self.known_handle(r).map(Pending::Close),
            frame::READ => return self.known_handle(r).map(Pending::Read),
            frame::REMOVE => FileEvent::Remove { path: path(r)?, status: UNANSWERED },
            frame::MKDIR => FileEvent::Mkdir { path: path(r)?, status: UNANSWERED },
            frame::RMDIR => FileEvent::Rmdir { path: path(r)?, status: UNANSWERED },
            frame::RENAME => FileEvent::Rename { path: path(r)?, new_path: path(r)?, status: UNANSWERED },
            frame::SETSTAT => setstat(path(r)?, r),
            frame::FSETSTAT => {
                let handle = r.string()?;
                setstat(self.handles.get(handle)?.path.clone(), r)
            }
            frame::EXTENDED => match r.string()? {
                b"posix-rename@openssh.com" => {
                    FileEvent::Rename { path: path(r)?, new_path: path(r)?, status: UNANSWERED }
                }
                b"lsetstat@openssh.com" => setstat(path(r)?, r),
                _ => return None,
            },
            _ => return None,
        };
        Some(Pending::Event(event))
    }

    fn known_handle(&self, r: &mut Reader<'_>) -> Option<Vec<u8>> {
        let handle = r.string()?;
        self.handles.get(handle).map(|_| handle.to_vec())
    }

    /// Entries and bytes held: (pending, pending bytes, handles, handle bytes).
    #[cfg(test)]
    pub(super) fn tracked(&self) -> (usize, usize, usize, usize) {
        (self.pending.map.len(), self.pending.bytes, self.handles.map.len(), self.handles.bytes)
    }
}

fn status(r: &mut Reader<'_>) -> Status {
    r.u32().map_or(Status::Unknown, Status::from_code)
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn setstat(path: String, r: &mut Reader<'_>) -> FileEvent {
    let mut parts = Vec::new();
    // Attrs cut short (or with bits we don't know) still report what came before.
    describe_attrs(r, &mut parts);
    FileEvent::Setstat { path, attrs: parts.join(","), status: UNANSWERED }
}

/// Renders v3 attrs as `size=N`, `uid=N,gid=N`, `mode=0644`, `atime=N,mtime=N`.
fn describe_attrs(r: &mut Reader<'_>, parts: &mut Vec<String>) -> Option<()> {
    let flags = r.u32()?;
    if flags & 0x1 != 0 {
        parts.push(format!("size={}", r.u64()?));
    }
    if flags & 0x2 != 0 {
        let (uid, gid) = (r.u32()?, r.u32()?);
        parts.push(format!("uid={uid},gid={gid}"));
    }
    if flags & 0x4 != 0 {
        parts.push(format!("mode={:04o}", r.u32()? & 0o7777));
    }
    if flags & 0x8 != 0 {
        let (atime, mtime) = (r.u32()?, r.u32()?);
        parts.push(format!("atime={atime},mtime={mtime}"));
    }
    Some(())
}

/// A size in bytes counted against [`MAX_TABLE_BYTES`].
trait Weight {
    fn weight(&self) -> usize;
}

impl Weight for u32 {
    fn weight(&self) -> usize {
        0
    }
}

impl Weight for Vec<u8> {
    fn weight(&self) -> usize {
        self.len()
    }
}

impl Weight for OpenFile {
    fn weight(&self) -> usize {
        self.path.len()
    }
}

impl Weight for Pending {
    fn weight(&self) -> usize {
        match self {
            Self::Event(FileEvent::Rename { path, new_path, .. }) => path.len() + new_path.len(),
            Self::Event(FileEvent::Setstat { path, attrs, .. }) => path.len() + attrs.len(),
            Self::Event(event) => event.path().len(),
            Self::Read(handle) | Self::Close(handle) => handle.len(),
        }
    }
}

/// A map that refuses new entries past [`MAX_ENTRIES`] or [`MAX_TABLE_BYTES`].
#[derive(Debug)]
struct Table<K, V> {
    map: BTreeMap<K, V>,
    bytes: usize,
}

impl<K, V> Default for Table<K, V> {
    fn default() -> Self {
        Self { map: BTreeMap::new(), bytes: 0 }
    }
}

impl<K: Ord + Weight, V: Weight> Table<K, V> {
    /// Inserts unless full (a refused value is dropped); returns the value it replaced.
    fn insert(&mut self, key: K, value: V) -> Option<V> {
        let old = self.remove(&key);
        let weight = key.weight() + value.weight() + ENTRY_OVERHEAD;
        if self.map.len() < MAX_ENTRIES && self.bytes + weight <= MAX_TABLE_BYTES {
            self.bytes += weight;
            self.map.insert(key, value);
        }
        old
    }

    fn remove<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        let (key, value) = self.map.remove_entry(key)?;
        self.bytes -= key.weight() + value.weight() + ENTRY_OVERHEAD;
        Some(value)
    }

    fn get<Q: Ord + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.map.get(key)
    }

    /// For counters only: a value's weight must not change.
    fn get_mut<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        self.map.get_mut(key)
    }

    fn drain(&mut self) -> BTreeMap<K, V> {
        self.bytes = 0;
        std::mem::take(&mut self.map)
    }
}
