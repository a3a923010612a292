//! asciicast v2, the session recording format: one JSON header line, then one
//! `[time, code, data]` event line per output, input or resize.
//!
//! `o` and `i` data must be valid UTF-8, so a terminal's byte stream goes through a
//! [`Utf8Decoder`] first (a read can split a multibyte character). Lines are written by
//! [`Header::to_line`] and [`event_line`] and read back by [`read_cast`], which
//! tolerates the torn last line a crash mid-write leaves.

use serde_json::{Map, Value};

pub use ansi::strip_ansi;
pub use utf8::Utf8Decoder;

mod ansi;
#[cfg(test)]
mod tests;
mod utf8;

/// The recording's first line: terminal size and when it started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Columns.
    pub width: u16,
    /// Rows.
    pub height: u16,
    /// Start, Unix seconds (0 when the header has none).
    pub timestamp: u64,
    /// The terminal type (`env.TERM`).
    pub term: Option<String>,
    /// A human title.
    pub title: Option<String>,
}

/// What an event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// Bytes to the terminal (`o`).
    Output,
    /// Bytes from the keyboard (`i`).
    Input,
    /// A terminal resize (`r`), data `COLSxROWS`.
    Resize,
    /// A marker (`m`), data a label.
    Marker,
}

/// One event line.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Seconds since the recording started.
    pub time: f64,
    /// Its kind.
    pub kind: EventKind,
    /// Text, or `COLSxROWS` for a resize.
    pub data: String,
}

/// Why a line or a file is not asciicast v2.
#[derive(Debug, thiserror::Error)]
pub enum AsciicastError {
    /// The text is empty.
    #[error("no header line")]
    Empty,
    /// The line is not the JSON expected.
    #[error("not JSON of the expected shape: {0}")]
    Json(#[from] serde_json::Error),
    /// The header lacks a key or has one of the wrong type.
    #[error("header: missing or mistyped `{0}`")]
    BadHeader(&'static str),
    /// The header names another version.
    #[error("asciicast version {0} is not 2")]
    Version(u64),
    /// An event's code is none of `o`, `i`, `r`, `m`.
    #[error("unknown event code {0:?}")]
    UnknownKind(String),
    /// An event's time lies past [`MAX_EVENT_TIME`].
    #[error("event time {0} s is out of range")]
    TimeOutOfRange(f64),
    /// A complete line that cannot be read.
    #[error("line {line}: {source}")]
    AtLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        source: Box<AsciicastError>,
    },
}

impl Header {
    /// The header as one JSON line, without the newline.
    pub fn to_line(&self) -> String {
        let mut object = Map::new();
        object.insert("version".into(), 2.into());
        object.insert("width".into(), self.width.into());
        object.insert("height".into(), self.height.into());
        object.insert("timestamp".into(), self.timestamp.into());
        if let Some(term) = &self.term {
            let env = Map::from_iter([("TERM".to_string(), Value::from(term.as_str()))]);
            object.insert("env".into(), env.into());
        }
        if let Some(title) = &self.title {
            object.insert("title".into(), title.as_str().into());
        }
        // serde_json's map sorts keys; players look keys up by name.
        Value::Object(object).to_string()
    }

    /// Reads a header line; unknown keys are ignored.
    pub fn parse(line: &str) -> Result<Header, AsciicastError> {
        let Value::Object(map) = serde_json::from_str(line)? else {
            return Err(AsciicastError::BadHeader("version"));
        };
        let version = map.get("version").and_then(Value::as_u64).ok_or(AsciicastError::BadHeader("version"))?;
        if version != 2 {
            return Err(AsciicastError::Version(version));
        }
        let size = |key: &'static str| {
            map.get(key)
                .and_then(Value::as_u64)
                .and_then(|v| u16::try_from(v).ok())
                .ok_or(AsciicastError::BadHeader(key))
        };
        let (width, height) = (size("width")?, size("height")?);
        let timestamp = match map.get("timestamp") {
            None | Some(Value::Null) => 0,
            Some(v) => v.as_u64().ok_or(AsciicastError::BadHeader("timestamp"))?,
        };
        let term = match map.get("env") {
            None | Some(Value::Null) => None,
            Some(Value::Object(env)) => match env.get("TERM") {
                None | Some(Value::Null) => None,
                Some(Value::String(t)) => Some(t.clone()),
                Some(_) => return Err(AsciicastError::BadHeader("env.TERM")),
            },
            Some(_) => return Err(AsciicastError::BadHeader("env")),
        };
        let title = match map.get("title") {
            None | Some(Value::Null) => None,
            Some(Value::String(t)) => Some(t.clone()),
            Some(_) => return Err(AsciicastError::BadHeader("title")),
        };
        Ok(Header { width, height, timestamp, term, title })
    }
}

impl EventKind {
    /// The one-letter code on the wire.
    pub fn code(self) -> &'static str {
        match self {
            EventKind::Output => "o",
            EventKind::Input => "i",
            EventKind::Resize => "r",
            EventKind::Marker => "m",
        }
    }

    /// The kind a code names.
    pub fn from_code(code: &str) -> Option<EventKind> {
        match code {
            "o" => Some(EventKind::Output),
            "i" => Some(EventKind::Input),
            "r" => Some(EventKind::Resize),
            "m" => Some(EventKind::Marker),
            _ => None,
        }
    }
}

/// The latest event time read, in seconds: 2^53 microseconds (~285 years), the most an
/// `f64` holds to the microsecond. Later times could not be written back as they read.
pub const MAX_EVENT_TIME: f64 = 9_007_199_254.740_992;

/// One event as a compact JSON array, without the newline.
///
/// The time keeps at most 6 decimals (microseconds); negative or non-finite times
/// become 0. `data` is JSON-escaped, so control characters such as ESC take 6 bytes.
pub fn event_line(time: f64, kind: EventKind, data: &str) -> String {
    let time = if time.is_finite() && time > 0.0 { time } else { 0.0 };
    let mut line = Vec::with_capacity(data.len() + 24);
    write_event(&mut line, (time * 1e6).round() as u64, kind, data);
    String::from_utf8(line).expect("an event line is UTF-8")
}

/// Appends one event line (without the newline) to `out`, the time in microseconds.
///
/// The same bytes as [`event_line`], written in place: no temporary strings, one pass
/// over `data` that copies runs of plain bytes whole.
pub fn write_event(out: &mut Vec<u8>, micros: u64, kind: EventKind, data: &str) {
    out.push(b'[');
    write_time(out, micros);
    out.extend_from_slice(b",\"");
    out.extend_from_slice(kind.code().as_bytes());
    out.extend_from_slice(b"\",\"");
    write_escaped(out, data.as_bytes());
    out.extend_from_slice(b"\"]");
}

/// `data` escaped as the inside of a JSON string, as serde_json escapes it: `"`, `\\`,
/// `\b \t \n \f \r` by name, other C0 controls as `\u00XX`, everything else verbatim.
///
/// Terminal output is mostly bytes that need no escape: blocks of [`ESCAPE_BLOCK`] are
/// tested at once (a loop without early exit, which the compiler vectorises), and only a
/// block that holds something to escape is walked byte by byte.
fn write_escaped(out: &mut Vec<u8>, data: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let needs_escape = |byte: u8| byte < 0x20 || byte == b'"' || byte == b'\\';
    out.reserve(data.len());
    let mut start = 0;
    for (n, block) in data.chunks(ESCAPE_BLOCK).enumerate() {
        if !block.iter().fold(false, |any, &byte| any | needs_escape(byte)) {
            continue;
        }
        for (k, &byte) in block.iter().enumerate() {
            if !needs_escape(byte) {
                continue;
            }
            let i = n * ESCAPE_BLOCK + k;
            out.extend_from_slice(&data[start..i]);
            start = i + 1;
            match byte {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                0x08 => out.extend_from_slice(b"\\b"),
                b'\t' => out.extend_from_slice(b"\\t"),
                b'\n' => out.extend_from_slice(b"\\n"),
                0x0c => out.extend_from_slice(b"\\f"),
                b'\r' => out.extend_from_slice(b"\\r"),
                _ => out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[(byte >> 4) as usize],
                    HEX[(byte & 15) as usize],
                ]),
            }
        }
    }
    out.extend_from_slice(&data[start..]);
}

/// Bytes [`write_escaped`] tests at once.
const ESCAPE_BLOCK: usize = 32;

/// Seconds with at most 6 decimals, trailing zeros trimmed but one kept (`1.0`).
fn write_time(out: &mut Vec<u8>, micros: u64) {
    use std::io::Write;
    let (secs, mut frac) = (micros / 1_000_000, micros % 1_000_000);
    let _ = write!(out, "{secs}.");
    if frac == 0 {
        out.push(b'0');
        return;
    }
    let mut digits = 6;
    while frac % 10 == 0 {
        frac /= 10;
        digits -= 1;
    }
    let _ = write!(out, "{frac:0digits$}");
}

/// The data of a resize event.
pub fn resize_data(cols: u16, rows: u16) -> String {
    format!("{cols}x{rows}")
}

/// Columns and rows from a resize event's data.
pub fn parse_resize(data: &str) -> Option<(u16, u16)> {
    let (cols, rows) = data.split_once('x')?;
    Some((cols.parse().ok()?, rows.parse().ok()?))
}

/// Reads one event line.
pub fn parse_event(line: &str) -> Result<Event, AsciicastError> {
    let (time, code, data): (f64, String, String) = serde_json::from_str(line)?;
    if time > MAX_EVENT_TIME {
        return Err(AsciicastError::TimeOutOfRange(time));
    }
    let kind = EventKind::from_code(&code).ok_or(AsciicastError::UnknownKind(code))?;
    Ok(Event { time, kind, data })
}

/// Reads a whole recording: its header, its events and whether the last line was torn.
///
/// A last line without its newline that does not parse (a crash mid-write) is left
/// out and reported as `true`; any other unreadable line is an error. A file cut
/// inside a multibyte character is not UTF-8: read it with `String::from_utf8_lossy`,
/// which only touches that torn line.
pub fn read_cast(text: &str) -> Result<(Header, Vec<Event>, bool), AsciicastError> {
    let mut lines = text.split_inclusive('\n').enumerate();
    let (_, first) = lines.next().ok_or(AsciicastError::Empty)?;
    let header = Header::parse(first.trim_end()).map_err(|e| at_line(0, e))?;
    let mut events = Vec::new();
    let mut truncated = false;
    for (i, raw) in lines {
        let line = raw.trim_end_matches(['\n', '\r']);
        if line.trim().is_empty() {
            continue;
        }
        match parse_event(line) {
            Ok(event) => events.push(event),
            Err(_) if !raw.ends_with('\n') => truncated = true,
            Err(e) => return Err(at_line(i, e)),
        }
    }
    Ok((header, events, truncated))
}

fn at_line(index: usize, source: AsciicastError) -> AsciicastError {
    AsciicastError::AtLine { line: index + 1, source: Box::new(source) }
}
