//! The file side of a recording: coalescing the relay's chunks into asciicast events,
//! buffering them and writing them out at least every second.

use std::fs::File;
use std::io::{self, Write};
use std::time::{Duration, Instant};

use portcullis_proto::asciicast::{EventKind, Header, Utf8Decoder, resize_data, write_event};

/// Output arriving this soon after the previous chunk joins its event.
const GAP: Duration = Duration::from_millis(10);
/// An event spans at most this long, so a steady trickle still plays back in time.
const SPAN: Duration = Duration::from_millis(100);
/// An event holds at most this much text.
const EVENT_MAX: usize = 16 * 1024;
/// Buffered lines are written once they reach this size, or at the next tick.
const BUFFER_MAX: usize = 64 * 1024;
/// Lines are written at least this often, even without ticks.
const WRITE_EVERY: Duration = Duration::from_secs(1);

/// What a recording saw, for its metadata row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Output bytes seen.
    pub output_bytes: u64,
    /// Output bytes past the cap, not recorded.
    pub capped_bytes: u64,
    /// Output bytes not stored verbatim: invalid UTF-8 recorded as U+FFFD, and ignored
    /// terminal controls dropped.
    pub replaced_bytes: u64,
    /// Of those, the dropped controls.
    pub dropped_controls: u64,
}

/// Output not yet written as an event.
struct Pending {
    text: String,
    raw: u64,
    first: Instant,
    last: Instant,
}

/// An asciicast file being written.
pub struct CastWriter {
    file: File,
    started: Instant,
    cap_bytes: u64,
    record_input: bool,
    output: Utf8Decoder,
    input: Utf8Decoder,
    pending: Option<Pending>,
    buffer: Vec<u8>,
    /// Bytes in the file plus the buffer.
    size: u64,
    last_write: Instant,
    /// Every event stamped before this (in the recording's clock) is in the file.
    through: Duration,
    capped: bool,
    totals: Totals,
    /// The first write error; every later call fails with it.
    failed: Option<String>,
}

impl CastWriter {
    /// Takes an empty file opened for writing; times count from `started`.
    pub fn new(file: File, started: Instant, cap_bytes: u64, record_input: bool) -> CastWriter {
        CastWriter {
            file,
            started,
            cap_bytes,
            record_input,
            output: Utf8Decoder::new(),
            input: Utf8Decoder::new(),
            pending: None,
            // Grows only while output is pending: an idle session costs no buffer.
            buffer: Vec::new(),
            size: 0,
            last_write: started,
            through: Duration::ZERO,
            capped: false,
            totals: Totals::default(),
            failed: None,
        }
    }

    /// Writes the header line at once, so the file is a valid recording from the start.
    pub fn header(&mut self, header: &Header, now: Instant) -> io::Result<()> {
        let mut line = header.to_line();
        line.push('\n');
        self.size += line.len() as u64;
        self.buffer.extend_from_slice(line.as_bytes());
        self.write_out(now)
    }

    /// Output bytes seen at `now`.
    pub fn output(&mut self, bytes: &[u8], now: Instant) -> io::Result<()> {
        self.check()?;
        self.totals.output_bytes += bytes.len() as u64;
        if self.capped {
            self.totals.capped_bytes += bytes.len() as u64;
            return Ok(());
        }
        if self.pending.as_ref().is_some_and(|p| since(p.last, now) >= GAP || since(p.first, now) >= SPAN) {
            self.emit_pending()?;
        }
        let pending =
            self.pending.get_or_insert_with(|| Pending { text: String::new(), raw: 0, first: now, last: now });
        self.totals.dropped_controls += decode_kept(&mut self.output, bytes, &mut pending.text) as u64;
        pending.raw += bytes.len() as u64;
        pending.last = now;
        if pending.text.len() >= EVENT_MAX {
            self.emit_pending()?;
        }
        self.write_if_due(now)
    }

    /// Input bytes seen at `now`; ignored unless input is recorded.
    pub fn input(&mut self, bytes: &[u8], now: Instant) -> io::Result<()> {
        self.check()?;
        if !self.record_input || self.capped {
            return Ok(());
        }
        self.emit_pending()?;
        let text = self.input.push(bytes);
        if !text.is_empty() {
            self.emit(now, EventKind::Input, &text)?;
        }
        self.write_if_due(now)
    }

    /// A terminal resize at `now`.
    pub fn resize(&mut self, cols: u16, rows: u16, now: Instant) -> io::Result<()> {
        self.check()?;
        if self.capped {
            return Ok(());
        }
        self.emit_pending()?;
        self.emit(now, EventKind::Resize, &resize_data(cols, rows))?;
        self.write_if_due(now)
    }

    /// Writes out everything seen so far (no fsync).
    pub fn tick(&mut self, now: Instant) -> io::Result<()> {
        self.check()?;
        self.emit_pending()?;
        self.write_out(now)
    }

    /// Writes the rest, notes a cap in the file, and syncs it to disk.
    pub fn finish(&mut self, now: Instant) -> io::Result<Totals> {
        self.check()?;
        self.emit_pending()?;
        let rest = self.output.finish();
        if !rest.is_empty() && !self.capped {
            self.emit(now, EventKind::Output, &rest)?;
        }
        self.totals.replaced_bytes = self.output.replaced_bytes() + self.totals.dropped_controls;
        if self.capped {
            // Only ever in the file: the recorded user sees nothing of it.
            let note = format!(
                "\r\n[portcullis: recording capped at {} bytes; {} further bytes of output not recorded]\r\n",
                self.cap_bytes, self.totals.capped_bytes
            );
            self.size += self.push_line(now, EventKind::Output, &note);
        }
        self.write_out(now)?;
        self.file.sync_all().inspect_err(|e| self.failed = Some(e.to_string()))?;
        Ok(self.totals)
    }

    /// The recording's clock at `now`: no event is ever stamped later than this.
    pub fn elapsed(&self, now: Instant) -> Duration {
        since(self.started, now)
    }

    /// How far the file is complete, in the recording's clock: every event stamped before
    /// this is written (to the OS; no fsync), and none will be stamped earlier later on.
    pub fn written_through(&self) -> Duration {
        self.through
    }

    /// Nothing seen is left unwritten (a partial UTF-8 character held back goes into a
    /// later event, stamped later).
    pub fn caught_up(&self) -> bool {
        self.failed.is_none() && self.pending.is_none() && self.buffer.is_empty()
    }

    /// What was seen so far.
    pub fn totals(&self) -> Totals {
        Totals { replaced_bytes: self.output.replaced_bytes() + self.totals.dropped_controls, ..self.totals }
    }

    /// Writes what is buffered, if nothing failed yet; for a recording dropped unfinished.
    pub fn salvage(&mut self, now: Instant) {
        if self.failed.is_none() {
            let _ = self.emit_pending().and_then(|()| self.write_out(now));
        }
    }

    fn check(&self) -> io::Result<()> {
        match &self.failed {
            None => Ok(()),
            Some(e) => Err(io::Error::other(format!("recording failed earlier: {e}"))),
        }
    }

    fn emit_pending(&mut self) -> io::Result<()> {
        let Some(pending) = self.pending.take() else { return Ok(()) };
        if pending.text.is_empty() {
            return Ok(());
        }
        self.emit(pending.first, EventKind::Output, &pending.text)?;
        if self.capped {
            self.totals.capped_bytes += pending.raw;
        }
        Ok(())
    }

    /// Buffers one event, or starts capping if it would take the file past the cap.
    fn emit(&mut self, at: Instant, kind: EventKind, data: &str) -> io::Result<()> {
        let len = self.push_line(at, kind, data);
        if self.size + len > self.cap_bytes {
            self.buffer.truncate(self.buffer.len() - len as usize);
            self.capped = true;
            return Ok(());
        }
        self.size += len;
        if self.buffer.len() >= BUFFER_MAX {
            self.write_out(at)?;
        }
        Ok(())
    }

    /// Appends one event line to the buffer; returns its length. The caller counts it
    /// into `size` (or takes it back).
    fn push_line(&mut self, at: Instant, kind: EventKind, data: &str) -> u64 {
        let before = self.buffer.len();
        write_event(&mut self.buffer, since(self.started, at).as_micros() as u64, kind, data);
        self.buffer.push(b'\n');
        (self.buffer.len() - before) as u64
    }

    fn write_if_due(&mut self, now: Instant) -> io::Result<()> {
        if since(self.last_write, now) >= WRITE_EVERY {
            self.emit_pending()?;
            self.write_out(now)?;
        }
        Ok(())
    }

    fn write_out(&mut self, now: Instant) -> io::Result<()> {
        self.last_write = self.last_write.max(now);
        if !self.buffer.is_empty() {
            let result = self.file.write_all(&self.buffer);
            self.buffer.clear();
            if self.buffer.capacity() > BUFFER_MAX + EVENT_MAX {
                self.buffer.shrink_to(BUFFER_MAX + EVENT_MAX);
            }
            result.inspect_err(|e| self.failed = Some(e.to_string()))?;
        }
        // Events are stamped in order as they are seen: all but the pending one (stamped at
        // its first chunk) and those still to come (stamped `now` or later) are in the file.
        let complete = self.pending.as_ref().map_or(now, |p| p.first.min(now));
        self.through = self.through.max(since(self.started, complete));
        Ok(())
    }
}

/// C0 controls (and DEL) that terminals ignore: dropping them changes no screen, and keeps
/// `cat /dev/zero` from costing six bytes of JSON escape (`\u0000`) per byte.
/// BEL, BS, HT, LF, VT, FF, CR, SO, SI and ESC are kept.
fn ignored_by_terminals(byte: u8) -> bool {
    matches!(byte, 0x00..=0x06 | 0x10..=0x1a | 0x1c..=0x1f | 0x7f)
}

/// Decodes `bytes` onto `out` without the controls terminals ignore; returns how many
/// were dropped. The same text as decoding everything and then dropping them: the
/// controls are ASCII, so one can only cut short a character the decoder holds, which
/// then becomes U+FFFD exactly as before an ASCII byte. One pass over the bytes; a run
/// of dropped bytes (binary output, `/dev/zero`) is never copied.
fn decode_kept(decoder: &mut Utf8Decoder, bytes: &[u8], out: &mut String) -> usize {
    // All NUL (`/dev/zero`, sparse files): one vectorised pass, nothing kept.
    if bytes.iter().fold(0u8, |any, &b| any | b) == 0 {
        if !bytes.is_empty() && decoder.held_bytes() > 0 {
            out.push_str(&decoder.finish());
        }
        return bytes.len();
    }
    // Nothing to drop (text, escapes included): one vectorised pass, then decoded whole.
    if !bytes.iter().fold(false, |any, &b| any | ignored_by_terminals(b)) {
        decoder.push_into(bytes, out);
        return 0;
    }
    let mut dropped = 0;
    let mut rest = bytes;
    while !rest.is_empty() {
        let kept = rest.iter().position(|&b| ignored_by_terminals(b)).unwrap_or(rest.len());
        if kept > 0 {
            decoder.push_into(&rest[..kept], out);
        }
        rest = &rest[kept..];
        let skipped = rest.iter().position(|&b| !ignored_by_terminals(b)).unwrap_or(rest.len());
        if skipped > 0 && decoder.held_bytes() > 0 {
            out.push_str(&decoder.finish());
        }
        dropped += skipped;
        rest = &rest[skipped..];
    }
    dropped
}

fn since(earlier: Instant, now: Instant) -> Duration {
    now.saturating_duration_since(earlier)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decoding everything, then dropping the controls: what `decode_kept` must equal.
    fn reference(chunks: &[&[u8]]) -> (String, usize, u64) {
        let mut decoder = Utf8Decoder::new();
        let mut text = String::new();
        for chunk in chunks {
            decoder.push_into(chunk, &mut text);
        }
        let before = text.chars().count();
        text.retain(|c| !(c.is_ascii() && ignored_by_terminals(c as u8)));
        let dropped = before - text.chars().count();
        (text, dropped, decoder.replaced_bytes())
    }

    fn kept(chunks: &[&[u8]]) -> (String, usize, u64) {
        let mut decoder = Utf8Decoder::new();
        let mut text = String::new();
        let dropped = chunks.iter().map(|c| decode_kept(&mut decoder, c, &mut text)).sum();
        (text, dropped, decoder.replaced_bytes())
    }

    #[test]
    fn dropping_controls_while_decoding_equals_dropping_them_after() {
        let cases: &[&[&[u8]]] = &[
            &[b"\0\0\0"],
            &["\0é\x01\x7fa€\x1b[0m\x07\0😀\0".as_bytes()],
            &[b"plain text\r\n"],
            // A character cut by a control, and one split across chunks around one.
            &[b"x\xe2\x00\x82\xacy"],
            &[b"a\xe2\x82", b"\xac\x00b"],
            &[b"a\xe2", b"\x00", b"\x82\xac"],
            &[b"\xff\x00\xfe", b"\x1f\x1b"],
            // Text with nothing to drop (decoded whole), a character split across such chunks.
            &[b"caf\xc3", b"\xa9 \x1b[0m\r\n", b"\xe2\x82", b"\xac\x01"],
            &[b"ok \xff\xfe", b"\xf0\x9f\x98"],
        ];
        for chunks in cases {
            assert_eq!(kept(chunks), reference(chunks), "{chunks:?}");
        }
        let noise: Vec<u8> = (0u32..20_000).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for size in [1, 3, 7, 64, 4096] {
            let chunks: Vec<&[u8]> = noise.chunks(size).collect();
            assert_eq!(kept(&chunks), reference(&chunks), "noise in chunks of {size}");
        }
        let zeros = vec![0u8; 32 * 1024];
        assert_eq!(kept(&[&zeros]), (String::new(), zeros.len(), 0));
    }
}
