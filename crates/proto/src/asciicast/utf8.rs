//! Incremental, lossy UTF-8 decoding of a terminal's byte stream.

/// Decodes a byte stream chunk by chunk into valid UTF-8 text.
///
/// A multibyte character split across chunks is held (at most 3 bytes) until the next
/// chunk completes it. Each maximal invalid subpart becomes one U+FFFD, as
/// `String::from_utf8_lossy` does over the whole stream, so binary output costs at
/// most 3 bytes of text per byte and never per-byte escapes.
#[derive(Debug, Default, Clone)]
pub struct Utf8Decoder {
    /// The start of a character the last chunk cut off.
    held: Vec<u8>,
    /// Bytes replaced by U+FFFD so far.
    replaced: u64,
}

impl Utf8Decoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Utf8Decoder {
        Utf8Decoder::default()
    }

    /// Decodes the next chunk, holding back a cut-off character.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len() + self.held.len());
        self.push_into(bytes, &mut out);
        out
    }

    /// Decodes the next chunk onto the end of `out`, holding back a cut-off character.
    pub fn push_into(&mut self, bytes: &[u8], out: &mut String) {
        if self.held.is_empty() {
            self.decode(bytes, out);
        } else {
            let mut joined = std::mem::take(&mut self.held);
            joined.extend_from_slice(bytes);
            self.decode(&joined, out);
        }
    }

    /// Ends the stream: a held, never completed character becomes one U+FFFD.
    pub fn finish(&mut self) -> String {
        if self.held.is_empty() {
            return String::new();
        }
        self.replaced += self.held.len() as u64;
        self.held.clear();
        char::REPLACEMENT_CHARACTER.to_string()
    }

    /// How many input bytes were replaced by U+FFFD so far.
    pub fn replaced_bytes(&self) -> u64 {
        self.replaced
    }

    /// How many bytes are held for the next chunk.
    pub fn held_bytes(&self) -> usize {
        self.held.len()
    }

    fn decode(&mut self, bytes: &[u8], out: &mut String) {
        // Mostly it is all valid, or valid but for a character cut off at the end: the
        // standard validator takes ASCII a word at a time, where walking the chunks goes
        // byte by byte, so only what follows the valid start is walked.
        let valid = match std::str::from_utf8(bytes) {
            Ok(text) => {
                out.push_str(text);
                return;
            }
            Err(error) => error.valid_up_to(),
        };
        let (head, rest) = bytes.split_at(valid);
        if let Ok(head) = std::str::from_utf8(head) {
            out.push_str(head);
        }
        let mut chunks = rest.utf8_chunks().peekable();
        while let Some(chunk) = chunks.next() {
            out.push_str(chunk.valid());
            let invalid = chunk.invalid();
            if invalid.is_empty() {
                continue;
            }
            if chunks.peek().is_none() && is_cut_off(invalid) {
                self.held.extend_from_slice(invalid);
            } else {
                out.push(char::REPLACEMENT_CHARACTER);
                self.replaced += invalid.len() as u64;
            }
        }
    }
}

/// Whether `bytes` (at most 3) are the valid start of a character that goes on.
fn is_cut_off(bytes: &[u8]) -> bool {
    matches!(std::str::from_utf8(bytes), Err(e) if e.error_len().is_none())
}
