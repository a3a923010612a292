//! asciicast v2 recordings: any text reads or fails cleanly, and what reads writes back
//! out and reads again to the same header and events.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_proto::asciicast::{Header, event_line, parse_event, parse_resize, read_cast, resize_data};

fuzz_target!(|data: &[u8]| {
    // Recordings on disk may be cut inside a character; readers go through from_utf8_lossy.
    let text = String::from_utf8_lossy(data);
    for line in text.lines().take(64) {
        let _ = Header::parse(line);
        if let Ok(event) = parse_event(line) {
            assert!(event.time.is_finite());
            if let Some((cols, rows)) = parse_resize(&event.data) {
                assert_eq!(parse_resize(&resize_data(cols, rows)), Some((cols, rows)));
            }
        }
    }
    let Ok((header, events, _torn)) = read_cast(&text) else { return };
    let mut written = header.to_line();
    written.push('\n');
    for event in &events {
        written.push_str(&event_line(event.time, event.kind, &event.data));
        written.push('\n');
    }
    let (header2, events2, torn2) = read_cast(&written).expect("what we write reads back");
    assert_eq!(header2, header);
    assert!(!torn2);
    assert_eq!(events2.len(), events.len());
    for (a, b) in events.iter().zip(&events2) {
        assert_eq!((a.kind, &a.data), (b.kind, &b.data));
        // Times keep 6 decimals; negative times are written as 0.
        let expected = a.time.max(0.0);
        assert!((b.time - expected).abs() <= 1e-6 * expected.max(1.0), "{} became {}", a.time, b.time);
    }
});
