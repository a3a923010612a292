//! A terminal's byte stream on its way into a recording: incremental UTF-8 decoding in
//! any chunking, then control sequences stripped for search.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_proto::asciicast::{Utf8Decoder, strip_ansi};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the chunk sizes: the stream is cut differently every run.
    let Some((&seed, stream)) = data.split_first() else { return };
    let mut decoder = Utf8Decoder::new();
    let mut text = String::new();
    let mut rest = stream;
    let mut step = usize::from(seed);
    while !rest.is_empty() {
        step = step.wrapping_mul(5).wrapping_add(3) % 17;
        let (chunk, tail) = rest.split_at(rest.len().min(step + 1));
        text.push_str(&decoder.push(chunk));
        assert!(decoder.held_bytes() <= 3);
        rest = tail;
    }
    text.push_str(&decoder.finish());
    assert_eq!(decoder.held_bytes(), 0);
    // However the stream was cut, the text is what decoding it whole gives.
    let whole = String::from_utf8_lossy(stream);
    assert_eq!(text, whole);
    let replaced = stream.len() as u64 - (whole.len() - 3 * whole.matches('\u{fffd}').count()) as u64;
    if !stream.windows(3).any(|w| w == "\u{fffd}".as_bytes()) {
        assert_eq!(decoder.replaced_bytes(), replaced);
    }

    let stripped = strip_ansi(&text);
    assert!(stripped.len() <= text.len());
    assert!(!stripped.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r')), "{stripped:?}");
    assert_eq!(strip_ansi(&stripped), stripped);
});
