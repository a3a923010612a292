//! Session recordings: one asciicast v2 file per recorded session under the recordings
//! dir (`YYYY-MM-DD/ID.cast`, mode 0600 in 0700 dirs), written as the session runs, and
//! its metadata row.
//!
//! The relay taps a live [`Recording`] with the bytes it forwards. Writes are small,
//! buffered, synchronous `std::fs` writes made from async code: a buffer reaches the
//! file at most every 64 KiB or at each [`Recording::tick`], so they cost little, and
//! their errors reach the relay at once so it can end the session (`fail_closed`).

use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, UNIX_EPOCH};

use anyhow::Context;
use portcullis_proto::asciicast::{EventKind, Header, read_cast};

use crate::datadir::create_private_dir;
use crate::store::{RecordingEnd, RecordingRow, Store, now, rfc3339};

use writer::CastWriter;
pub use writer::Totals;

pub mod index;
pub mod indexer;
mod mark;
#[cfg(test)]
mod tests;
mod writer;

pub use mark::WrittenMark;

/// Who and what a recording is of.
#[derive(Debug, Clone)]
pub struct RecordingMeta {
    /// The session recorded.
    pub session_id: String,
    /// The portcullis user.
    pub user: String,
    /// The node.
    pub node: String,
    /// The login on the node.
    pub login: String,
    /// The client's address.
    pub client_addr: String,
    /// The exec command; none for a shell.
    pub command: Option<String>,
    /// Terminal columns at the start.
    pub width: u16,
    /// Terminal rows at the start.
    pub height: u16,
    /// The terminal type.
    pub term: Option<String>,
}

/// Starts recordings and tidies up after crashes.
pub struct Recorder {
    dir: PathBuf,
    store: Store,
    cap_bytes: u64,
    record_input: bool,
}

/// A recording being written; end it with [`Recording::finish`].
pub struct Recording {
    id: String,
    path: PathBuf,
    writer: CastWriter,
    /// How far the file is complete, for readers following it while it runs.
    mark: Arc<WrittenMark>,
    /// For a recording dropped without `finish`: its row is then marked incomplete.
    store: Store,
    finished: bool,
}

impl Recorder {
    /// A recorder writing under `dir` (made 0700), each file at most about `cap_bytes`.
    pub fn new(dir: PathBuf, store: Store, cap_bytes: u64, record_input: bool) -> anyhow::Result<Recorder> {
        create_private_dir(&dir)?;
        // Rows keep absolute paths, so readers need not know where the gateway ran.
        let dir = fs::canonicalize(&dir).with_context(|| format!("cannot resolve {}", dir.display()))?;
        if dir.to_str().is_none() {
            anyhow::bail!("recordings dir {} is not UTF-8", dir.display());
        }
        Ok(Recorder { dir, store, cap_bytes, record_input })
    }

    /// The recordings dir.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where a recording's file is (rows hold absolute paths; a relative one is under the dir).
    pub fn path_of(&self, row: &RecordingRow) -> PathBuf {
        self.dir.join(&row.path)
    }

    /// Creates the file, writes its header and adds its row (incomplete until finished).
    pub async fn start(&self, meta: RecordingMeta) -> anyhow::Result<Recording> {
        let id = hex::encode(rand::random::<[u8; 16]>());
        let started_at = now();
        let day = rfc3339(Some(started_at))[..10].to_string();
        create_private_dir(&self.dir.join(&day))?;
        let path = self.dir.join(&day).join(format!("{id}.cast"));
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot create recording {}", path.display()))?;
        let started = Instant::now();
        let mut writer = CastWriter::new(file, started, self.cap_bytes, self.record_input);
        let header = Header {
            width: meta.width,
            height: meta.height,
            timestamp: started_at.max(0) as u64,
            term: meta.term.clone(),
            title: Some(title(&meta)),
        };
        let row = RecordingRow {
            id: id.clone(),
            session_id: meta.session_id,
            user: meta.user,
            node: meta.node,
            login: meta.login,
            client_addr: meta.client_addr,
            command: meta.command,
            path: path.to_str().context("recording path is not UTF-8")?.to_string(),
            bytes: 0,
            capped_bytes: 0,
            replaced_bytes: 0,
            complete: false,
            started_at,
            ended_at: None,
            duration_us: None,
        };
        let begun = match writer.header(&header, started) {
            Ok(()) => self.store.insert_recording(&row).await.context("cannot store recording metadata"),
            Err(e) => Err(anyhow::Error::new(e).context(format!("cannot write recording {}", path.display()))),
        };
        if let Err(e) = begun {
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        let mark = Arc::new(WrittenMark::new(started));
        let recording = Recording { id, path, writer, mark, store: self.store.clone(), finished: false };
        recording.written();
        Ok(recording)
    }

    /// At gateway start: ends recordings a crash left running, as incomplete, at their
    /// file's last write. Returns how many.
    ///
    /// With one gateway per database every unended row is a crash's; gateways sharing a
    /// database would need to tell their own rows apart first.
    pub async fn mark_incomplete_at_start(&self) -> anyhow::Result<u64> {
        let mut marked = 0;
        for row in self.store.unended_recordings().await? {
            let path = self.path_of(&row);
            let modified = fs::metadata(&path).and_then(|m| m.modified()).ok();
            let ended_at =
                modified.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(row.started_at, |d| d.as_secs() as i64);
            let bytes = modified.and_then(|_| recorded_output_bytes(&path));
            if self.store.mark_incomplete(&row.id, ended_at, bytes).await? {
                tracing::warn!(recording = %row.id, session = %row.session_id, "recording cut off by a crash; marked incomplete");
                marked += 1;
            }
        }
        Ok(marked)
    }
}

impl Recording {
    /// The recording's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How far its file is complete, for whoever follows it while it runs.
    pub fn mark(&self) -> Arc<WrittenMark> {
        self.mark.clone()
    }

    /// Bytes from the node to the user (stdout and stderr alike).
    pub fn output(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.mark.seeing();
        let result = self.writer.output(bytes, Instant::now());
        self.written();
        result
    }

    /// Bytes from the user to the node; recorded only if the recorder records input.
    pub fn input(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.mark.seeing();
        let result = self.writer.input(bytes, Instant::now());
        self.written();
        result
    }

    /// The user's terminal changed size.
    pub fn resize(&mut self, cols: u16, rows: u16) -> std::io::Result<()> {
        self.mark.seeing();
        let result = self.writer.resize(cols, rows, Instant::now());
        self.written();
        result
    }

    /// Writes out everything seen so far; call at least every second so a crash loses at most that.
    pub fn tick(&mut self) -> std::io::Result<()> {
        let result = self.writer.tick(Instant::now());
        self.written();
        result
    }

    /// Tells the mark how far the file is complete now.
    fn written(&self) {
        self.mark.written(self.writer.written_through(), self.writer.caught_up());
    }

    /// What was seen so far.
    pub fn totals(&self) -> Totals {
        self.writer.totals()
    }

    /// Flushes and syncs the file and stores the totals; the row is complete only if
    /// every write succeeded.
    pub async fn finish(mut self, store: &Store) -> anyhow::Result<()> {
        // fsync blocks this thread briefly, once per session. The end may stamp a last
        // event (a held-back character, the cap's note).
        self.mark.seeing();
        let at = Instant::now();
        let written = self.writer.finish(at);
        let totals = self.writer.totals();
        let end = RecordingEnd {
            ended_at: now(),
            duration_us: self.writer.elapsed(at).as_micros().try_into().unwrap_or(i64::MAX),
            bytes: totals.output_bytes as i64,
            capped_bytes: totals.capped_bytes as i64,
            replaced_bytes: totals.replaced_bytes as i64,
            complete: written.is_ok(),
        };
        let stored = store.finish_recording(&self.id, &end).await;
        self.finished = true;
        written.with_context(|| format!("cannot write recording {}", self.path.display()))?;
        stored.context("cannot store recording end")
    }
}

impl std::fmt::Debug for Recording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recording").field("id", &self.id).field("path", &self.path).finish_non_exhaustive()
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // A session task cancelled mid-way: keep what was seen and end the row now
        // rather than at the next start.
        self.writer.salvage(Instant::now());
        tracing::warn!(recording = %self.id, "recording dropped unfinished; marking it incomplete");
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let (store, id, bytes) = (self.store.clone(), self.id.clone(), self.writer.totals().output_bytes as i64);
        runtime.spawn(async move {
            if let Err(err) = store.mark_incomplete(&id, now(), Some(bytes)).await {
                tracing::warn!(recording = %id, "cannot mark recording incomplete: {err:#}");
            }
        });
    }
}

/// `login@node (user)`, and the command for an exec.
fn title(meta: &RecordingMeta) -> String {
    let base = format!("{}@{} ({})", meta.login, meta.node, meta.user);
    match &meta.command {
        Some(command) => format!("{base}: {command}"),
        None => base,
    }
}

/// Output bytes in a recording file, as recorded (text bytes, not the raw stream).
fn recorded_output_bytes(path: &Path) -> Option<i64> {
    let bytes = fs::read(path).ok()?;
    let (_, events, _) = read_cast(&String::from_utf8_lossy(&bytes)).ok()?;
    Some(events.iter().filter(|e| e.kind == EventKind::Output).map(|e| e.data.len() as i64).sum())
}
