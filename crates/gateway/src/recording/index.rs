//! Indexing one recording for the admin console, from its `.cast` file's event lines:
//! keyframes (screen snapshots from a server-side terminal emulator, for seeking) and
//! lines of text with escapes stripped (for search). Plain data and blocking file reads;
//! the indexer task runs this off the async workers.
//!
//! Indexing is incremental: [`CastIndex`] can stop after any event line and resume from
//! the stored [`IndexState`] and last keyframe, so a running recording is indexed as it
//! grows and a restart picks up where the last committed step ended.
//!
//! Keyframes capture what `vt100` can redraw: the visible screen with its attributes,
//! the cursor and input modes. Scroll regions, saved cursors, character sets and the
//! normal screen behind an alternate one (a full-screen program) are not captured, so
//! seeking into such a program can differ from playing from the start until it redraws.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use portcullis_proto::asciicast::{Event, EventKind, Header, parse_event, parse_resize, strip_ansi};

use crate::store::{IndexBatch, IndexState, Keyframe, TextLine};

#[cfg(test)]
mod tests;

/// A keyframe follows at most this many seconds of recording time after the previous one
/// (once the screen changed).
pub const KEYFRAME_EVERY_SECS: f64 = 5.0;
/// ... or after this many bytes of event lines, whichever comes first.
pub const KEYFRAME_EVERY_BYTES: u64 = 64 * 1024;
/// Text indexed per recording: the first 8 MiB of its output, escapes stripped.
pub const MAX_TEXT_BYTES: u64 = 8 << 20;
/// A line without a newline is indexed in pieces of this much raw output.
const PENDING_MAX: usize = 16 * 1024;
/// Longest indexed line, in bytes of text.
const LINE_MAX: usize = 2048;
/// The emulator's size is capped, so a hostile resize cannot make it allocate gigabytes.
const MAX_COLS: u16 = 1000;
/// See [`MAX_COLS`].
const MAX_ROWS: u16 = 500;
/// Smallest emulated screen.
const MIN_COLS: u16 = 4;
/// See [`MIN_COLS`].
const MIN_ROWS: u16 = 2;
/// Longest header line read.
const HEADER_MAX: u64 = 64 * 1024;
/// Search terms used from one query.
const MAX_TERMS: usize = 16;

/// One recording being indexed: a terminal emulator and the lines and keyframes found.
pub struct CastIndex {
    parser: vt100::Parser,
    /// False after the emulator failed: text only, no keyframes, for this step.
    emulate: bool,
    state: IndexState,
    last_keyframe_t: f64,
    since_keyframe: u64,
    changed: bool,
    lines: Vec<TextLine>,
    keyframes: Vec<Keyframe>,
}

/// An event line read from a `.cast` file.
#[derive(Debug, Clone, PartialEq)]
pub struct CastLine {
    /// The event; `None` for a line that is not one (skipped).
    pub event: Option<Event>,
    /// Length of the line in the file, newline included.
    pub len: u64,
    /// Offset in the file just past the line.
    pub end: u64,
}

impl CastIndex {
    /// A recording not indexed before; its first event line starts at `offset`.
    pub fn start(header: &Header, offset: u64) -> CastIndex {
        let state = IndexState { offset, text_bytes: 0, pending: String::new(), pending_t: 0.0, done: false };
        CastIndex::with_screen(header.width, header.height, 0.0, state)
    }

    /// Continues from a stored state: the emulator starts from `keyframe` (or a blank
    /// screen of the header's size), then the caller [`replay`](Self::replay)s the event
    /// lines from the keyframe's offset up to `state.offset`.
    pub fn resume(header: &Header, keyframe: Option<&Keyframe>, state: IndexState) -> CastIndex {
        match keyframe {
            Some(frame) => {
                let mut index = CastIndex::with_screen(frame.cols, frame.rows, frame.t, state);
                index.parser.process(&frame.screen);
                index
            }
            None => CastIndex::with_screen(header.width, header.height, 0.0, state),
        }
    }

    fn with_screen(cols: u16, rows: u16, t: f64, state: IndexState) -> CastIndex {
        let (cols, rows) = clamp_size(cols, rows);
        CastIndex {
            parser: vt100::Parser::new(rows, cols, 0),
            emulate: true,
            state,
            last_keyframe_t: t,
            since_keyframe: 0,
            changed: false,
            lines: Vec::new(),
            keyframes: Vec::new(),
        }
    }

    /// Indexes text only from now on (after the emulator panicked on this recording).
    pub fn without_emulator(mut self) -> CastIndex {
        self.emulate = false;
        self
    }

    /// Where the next event line starts.
    pub fn offset(&self) -> u64 {
        self.state.offset
    }

    /// Brings the emulator past a line already indexed (text and keyframes are not redone).
    pub fn replay(&mut self, line: &CastLine) {
        if let Some(event) = &line.event {
            self.emulate(event, line.len);
        }
    }

    /// Indexes the next event line.
    pub fn feed(&mut self, line: &CastLine) {
        self.state.offset = line.end;
        let Some(event) = &line.event else { return };
        if event.kind == EventKind::Output {
            self.text(event);
        }
        self.emulate(event, line.len);
        let due = self.changed && event.time - self.last_keyframe_t >= KEYFRAME_EVERY_SECS;
        if !self.emulate {
            return;
        }
        if due || self.since_keyframe >= KEYFRAME_EVERY_BYTES {
            let (rows, cols) = self.parser.screen().size();
            self.keyframes.push(Keyframe {
                t: event.time,
                offset: line.end,
                cols,
                rows,
                screen: self.parser.screen().state_formatted(),
            });
            self.last_keyframe_t = event.time;
            self.since_keyframe = 0;
            self.changed = false;
        }
    }

    /// The recording has ended and was read to its end: indexes the last line.
    pub fn finish(&mut self) {
        let pending = std::mem::take(&mut self.state.pending);
        self.line(&pending);
        self.state.done = true;
    }

    /// What was found since the last batch, with the state to store alongside.
    pub fn take_batch(&mut self, recording_id: &str) -> IndexBatch {
        IndexBatch {
            recording_id: recording_id.to_owned(),
            lines: std::mem::take(&mut self.lines),
            keyframes: std::mem::take(&mut self.keyframes),
            state: self.state.clone(),
        }
    }

    /// The emulated screen.
    pub fn screen(&self) -> &vt100::Screen {
        self.parser.screen()
    }

    fn emulate(&mut self, event: &Event, len: u64) {
        self.since_keyframe += len;
        if !self.emulate {
            return;
        }
        match event.kind {
            EventKind::Output => {
                self.parser.process(event.data.as_bytes());
                self.changed = true;
            }
            EventKind::Resize => {
                if let Some((cols, rows)) = parse_resize(&event.data) {
                    let (cols, rows) = clamp_size(cols, rows);
                    self.parser.screen_mut().set_size(rows, cols);
                    self.changed = true;
                }
            }
            EventKind::Input | EventKind::Marker => {}
        }
    }

    /// Splits output into lines; a line is indexed once its newline arrives (or it grows long).
    fn text(&mut self, event: &Event) {
        for piece in event.data.split_inclusive('\n') {
            if self.state.pending.is_empty() {
                self.state.pending_t = event.time;
            }
            let ended = piece.ends_with('\n');
            self.state.pending.push_str(piece.trim_end_matches('\n'));
            if ended || self.state.pending.len() >= PENDING_MAX {
                let pending = std::mem::take(&mut self.state.pending);
                self.line(&pending);
            }
        }
    }

    fn line(&mut self, raw: &str) {
        if self.state.text_bytes >= MAX_TEXT_BYTES {
            return;
        }
        let stripped = strip_ansi(raw).replace(['\r', '\t'], " ");
        let mut text = stripped.trim();
        if text.is_empty() {
            return;
        }
        if text.len() > LINE_MAX {
            text = &text[..text.floor_char_boundary(LINE_MAX)];
        }
        self.state.text_bytes += text.len() as u64;
        self.lines.push(TextLine { t: self.state.pending_t, line: text.to_owned() });
    }
}

/// The emulator's size for a recorded one: 80x24 when the client said none (0x0, as
/// `ssh -tt` without a terminal does), and within bounds the emulator handles (`vt100`
/// underflows on wide characters in a 1-column screen).
pub fn clamp_size(cols: u16, rows: u16) -> (u16, u16) {
    if cols == 0 || rows == 0 {
        return (80, 24);
    }
    (cols.clamp(MIN_COLS, MAX_COLS), rows.clamp(MIN_ROWS, MAX_ROWS))
}

/// Reads a `.cast` file's header line: the header and where the first event line starts.
pub fn read_header(path: &Path) -> anyhow::Result<(Header, u64)> {
    let mut reader = BufReader::new(File::open(path)?).take(HEADER_MAX);
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line)?;
    if !line.ends_with(b"\n") {
        anyhow::bail!("no complete header line");
    }
    let header = Header::parse(String::from_utf8_lossy(&line).trim_end())?;
    Ok((header, line.len() as u64))
}

/// Reads whole event lines from `offset` on, until about `budget` bytes were read or
/// `stop` says so for a line just read (which is then not returned). A torn last line
/// (a recording being written) is left for later. Returns the lines and whether the end
/// of the file was reached.
pub fn read_lines(
    path: &Path,
    offset: u64,
    budget: u64,
    mut stop: impl FnMut(&CastLine) -> bool,
) -> std::io::Result<(Vec<CastLine>, bool)> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    let (mut lines, mut read, mut end) = (Vec::new(), 0u64, offset);
    let mut buffer = Vec::new();
    while read < budget {
        buffer.clear();
        let n = reader.read_until(b'\n', &mut buffer)? as u64;
        if n == 0 || !buffer.ends_with(b"\n") {
            return Ok((lines, true));
        }
        read += n;
        end += n;
        let text = String::from_utf8_lossy(&buffer);
        let text = text.trim_end();
        let event = if text.is_empty() { None } else { parse_event(text).ok() };
        let line = CastLine { event, len: n, end };
        if stop(&line) {
            return Ok((lines, false));
        }
        lines.push(line);
    }
    // At the budget: the end only if nothing follows.
    let at_end = reader.fill_buf()?.is_empty();
    Ok((lines, at_end))
}

/// An FTS5 query matching lines that contain every word of `q`, or `None` if `q` has no
/// word. Each word is quoted as an FTS5 string (inner `"` doubled), so nothing the user
/// types is FTS5 syntax: `OR`, `NEAR(`, `*`, `^`, `:` and quotes are only text. Words
/// without a letter or digit are dropped (the tokenizer would find nothing in them).
pub fn fts_query(q: &str) -> Option<String> {
    let terms: Vec<String> = q
        .split_whitespace()
        .filter(|term| term.chars().any(char::is_alphanumeric))
        .take(MAX_TERMS)
        .map(|term| format!("\"{}\"", term.replace('"', "\"\"")))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

/// Events read for playing a stretch of a recording.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Output and resize events, in order.
    pub events: Vec<Event>,
    /// Columns at the window's start.
    pub cols: u16,
    /// Rows at the window's start.
    pub rows: u16,
    /// The file ended within the window (nothing was left out for the byte limit).
    pub at_end: bool,
}

/// Reads the output and resize events from `offset` on with time up to `until`, leaving
/// out (but following resizes of) those at or before `after`. Stops after about
/// `max_bytes` of event lines, at a change of time so a client can continue after the
/// last time it got. `cols`/`rows` is the size at `offset`.
pub fn read_window(
    path: &Path,
    offset: u64,
    (cols, rows): (u16, u16),
    after: Option<f64>,
    until: f64,
    max_bytes: u64,
) -> std::io::Result<Window> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    let mut window = Window { events: Vec::new(), cols, rows, at_end: false };
    let (mut bytes, mut buffer) = (0u64, Vec::new());
    loop {
        buffer.clear();
        let n = reader.read_until(b'\n', &mut buffer)? as u64;
        if n == 0 || !buffer.ends_with(b"\n") {
            window.at_end = true;
            return Ok(window);
        }
        let Ok(event) = parse_event(String::from_utf8_lossy(&buffer).trim_end()) else { continue };
        if !matches!(event.kind, EventKind::Output | EventKind::Resize) {
            continue;
        }
        if event.time > until {
            return Ok(window);
        }
        if after.is_some_and(|after| event.time <= after) {
            if let Some(size) = parse_resize(&event.data).filter(|_| event.kind == EventKind::Resize) {
                (window.cols, window.rows) = size;
            }
            continue;
        }
        let last = window.events.last().map(|e| e.time);
        if bytes >= max_bytes && last != Some(event.time) {
            return Ok(window);
        }
        bytes += n;
        window.events.push(event);
    }
}
