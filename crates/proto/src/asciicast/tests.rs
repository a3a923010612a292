use super::*;

fn header() -> Header {
    Header { width: 120, height: 40, timestamp: 1_738_324_800, term: Some("xterm-256color".into()), title: None }
}

/// Deterministic pseudo-random bytes (xorshift64).
fn noise(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

#[test]
fn header_round_trips() {
    let h = header();
    let line = h.to_line();
    assert!(!line.contains('\n'));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["version"], 2);
    assert_eq!(v["env"]["TERM"], "xterm-256color");
    assert!(v.get("title").is_none());
    assert_eq!(Header::parse(&line).unwrap(), h);

    let titled = Header { term: None, title: Some("vendor@gpu-01 \"x\"".into()), ..h };
    let line = titled.to_line();
    assert!(!line.contains("env"));
    assert_eq!(Header::parse(&line).unwrap(), titled);
}

#[test]
fn header_parse_accepts_asciinema_and_refuses_bad() {
    let asciinema = r#"{"version": 2, "width": 80, "height": 24, "timestamp": 1504467315, "idle_time_limit": 2.0, "env": {"SHELL": "/bin/zsh", "TERM": "xterm"}}"#;
    let h = Header::parse(asciinema).unwrap();
    assert_eq!((h.width, h.height, h.timestamp, h.term.as_deref()), (80, 24, 1504467315, Some("xterm")));
    assert_eq!(Header::parse(r#"{"version": 2, "width": 80, "height": 24}"#).unwrap().timestamp, 0);

    assert!(matches!(Header::parse(r#"{"version": 1, "width": 80, "height": 24}"#), Err(AsciicastError::Version(1))));
    assert!(matches!(Header::parse(r#"{"version": 2, "height": 24}"#), Err(AsciicastError::BadHeader("width"))));
    assert!(matches!(
        Header::parse(r#"{"version": 2, "width": 70000, "height": 24}"#),
        Err(AsciicastError::BadHeader("width"))
    ));
    assert!(matches!(Header::parse("[1]"), Err(AsciicastError::BadHeader(_))));
    assert!(matches!(Header::parse("{\"version\": 2, \"wid"), Err(AsciicastError::Json(_))));
}

#[test]
fn decoder_joins_characters_split_across_chunks() {
    let mut d = Utf8Decoder::new();
    // é = C3 A9
    assert_eq!(d.push(b"caf\xc3"), "caf");
    assert_eq!(d.held_bytes(), 1);
    assert_eq!(d.push(b"\xa9!"), "é!");
    // 😀 = F0 9F 98 80, one byte at a time
    assert_eq!(d.push(b"\xf0"), "");
    assert_eq!(d.push(b"\x9f"), "");
    assert_eq!(d.push(b"\x98"), "");
    assert_eq!(d.held_bytes(), 3);
    assert_eq!(d.push(b"\x80 ok"), "😀 ok");
    assert_eq!(d.finish(), "");
    assert_eq!(d.replaced_bytes(), 0);
}

#[test]
fn decoder_replaces_each_maximal_invalid_subpart_once() {
    let mut d = Utf8Decoder::new();
    assert_eq!(d.push(b"a\xffb"), "a\u{fffd}b");
    assert_eq!(d.replaced_bytes(), 1);
    // A cut-off € (E2 82) followed by ASCII: the two bytes are one subpart.
    assert_eq!(d.push(b"x\xe2\x82"), "x");
    assert_eq!(d.push(b"A"), "\u{fffd}A");
    assert_eq!(d.replaced_bytes(), 3);
    // Same answer as from_utf8_lossy over the whole stream.
    let stream = b"\xc0\xaf \xed\xa0\x80 \xf4\x90\x80\x80 \xe2\x82\xac \xf0\x9f";
    let lossy = String::from_utf8_lossy(stream);
    let mut d = Utf8Decoder::new();
    let mut text = String::new();
    for chunk in stream.chunks(3) {
        text.push_str(&d.push(chunk));
    }
    text.push_str(&d.finish());
    assert_eq!(text, lossy);
    assert_eq!(d.held_bytes(), 0);
    assert_eq!(d.replaced_bytes(), 2 + 3 + 4 + 2);
}

#[test]
fn decoder_keeps_random_bytes_compact() {
    let bytes = noise(64 * 1024);
    let mut d = Utf8Decoder::new();
    let mut text = String::new();
    for chunk in bytes.chunks(1000) {
        text.push_str(&d.push(chunk));
    }
    text.push_str(&d.finish());
    assert_eq!(text, String::from_utf8_lossy(&bytes));
    assert!(text.len() < 3 * bytes.len(), "{} bytes of text", text.len());
    assert!(d.replaced_bytes() > 16 * 1024, "{} replaced", d.replaced_bytes());
    let line = event_line(1.0, EventKind::Output, &text);
    assert!(line.len() < 3 * bytes.len(), "{} bytes of event", line.len());
}

#[test]
fn event_line_is_compact_and_escaped() {
    assert_eq!(event_line(1.5, EventKind::Output, "hi\r\n"), r#"[1.5,"o","hi\r\n"]"#);
    assert_eq!(event_line(0.0, EventKind::Input, "\"q\\"), r#"[0.0,"i","\"q\\"]"#);
    assert_eq!(event_line(2.0, EventKind::Resize, &resize_data(120, 40)), r#"[2.0,"r","120x40"]"#);
    assert_eq!(event_line(0.1234567, EventKind::Output, "\x1b[0m"), r#"[0.123457,"o","\u001b[0m"]"#);
    assert_eq!(event_line(-3.0, EventKind::Output, "é"), r#"[0.0,"o","é"]"#);
    assert_eq!(event_line(f64::NAN, EventKind::Marker, ""), r#"[0.0,"m",""]"#);
    assert_eq!(event_line(86400.25, EventKind::Output, "x"), r#"[86400.25,"o","x"]"#);
}

#[test]
fn events_parse_back() {
    let line = event_line(3.25, EventKind::Output, "\x1b[1mbold\x1b[0m\r\n");
    let e = parse_event(&line).unwrap();
    assert_eq!(e, Event { time: 3.25, kind: EventKind::Output, data: "\x1b[1mbold\x1b[0m\r\n".into() });
    // asciinema's own spacing
    assert_eq!(parse_event(r#"[0.248848, "r", "80x24"]"#).unwrap().kind, EventKind::Resize);
    assert_eq!(parse_resize("80x24"), Some((80, 24)));
    assert_eq!(parse_resize("80x"), None);
    assert!(matches!(parse_event(r#"[1.0, "z", "x"]"#), Err(AsciicastError::UnknownKind(k)) if k == "z"));
    // Found by the fuzzer: 1e80 s read, then saturated to u64::MAX microseconds on write.
    assert!(matches!(parse_event(r#"[1e80, "o", "x"]"#), Err(AsciicastError::TimeOutOfRange(_))));
    assert!(matches!(
        parse_event(&format!("[{:.6}, \"o\", \"x\"]", MAX_EVENT_TIME + 1.0)),
        Err(AsciicastError::TimeOutOfRange(_))
    ));
    let latest = parse_event(&format!("[{MAX_EVENT_TIME}, \"o\", \"x\"]")).unwrap();
    let again = parse_event(&event_line(latest.time, latest.kind, &latest.data)).unwrap();
    assert!((again.time - MAX_EVENT_TIME).abs() <= 1e-6 * MAX_EVENT_TIME);
    assert!(matches!(parse_event(r#"[1.0, "o"]"#), Err(AsciicastError::Json(_))));
    assert!(matches!(parse_event(r#"{"time": 1}"#), Err(AsciicastError::Json(_))));
}

#[test]
fn read_cast_reads_a_whole_file() {
    let text = format!(
        "{}\n{}\n{}\n{}\n",
        header().to_line(),
        event_line(0.5, EventKind::Output, "$ "),
        event_line(1.0, EventKind::Resize, "100x30"),
        event_line(1.25, EventKind::Output, "ls\r\n"),
    );
    let (h, events, truncated) = read_cast(&text).unwrap();
    assert_eq!(h, header());
    assert!(!truncated);
    assert_eq!(events.len(), 3);
    assert_eq!(events[2].data, "ls\r\n");
    // A complete last line without its newline is kept.
    let (_, events, truncated) = read_cast(text.trim_end()).unwrap();
    assert_eq!((events.len(), truncated), (3, false));
}

#[test]
fn read_cast_tolerates_a_torn_last_line_only() {
    let good = format!("{}\n{}\n", header().to_line(), event_line(0.5, EventKind::Output, "before crash"));
    let torn = format!("{good}[0.9,\"o\",\"after cr");
    let (_, events, truncated) = read_cast(&torn).unwrap();
    assert!(truncated);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].data, "before crash");
    // Zeros a power loss can leave at the end.
    let (_, events, truncated) = read_cast(&format!("{good}\0\0\0\0")).unwrap();
    assert_eq!((events.len(), truncated), (1, true));
    // A broken line in the middle is corruption.
    let corrupt = format!("{good}[0.9,\"o\",\"x\n{}\n", event_line(1.0, EventKind::Output, "y"));
    assert!(matches!(read_cast(&corrupt), Err(AsciicastError::AtLine { line: 3, .. })));
    assert!(matches!(read_cast(""), Err(AsciicastError::Empty)));
    assert!(matches!(read_cast("{\"version\":2,\"wi"), Err(AsciicastError::AtLine { line: 1, .. })));
    let (_, events, truncated) = read_cast(&format!("{}\n", header().to_line())).unwrap();
    assert_eq!((events.len(), truncated), (0, false));
}

#[test]
fn strip_ansi_leaves_text() {
    assert_eq!(strip_ansi("\x1b[1;31mred\x1b[0m plain"), "red plain");
    assert_eq!(strip_ansi("\x1b]0;user@host: ~\x07$ ls\r\n"), "$ ls\r\n");
    assert_eq!(strip_ansi("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\"), "link");
    assert_eq!(strip_ansi("\x1b[?1049h\x1b[H\x1b[2Jtop"), "top");
    assert_eq!(strip_ansi("\x1b(B\x1b7a\x1b8b\x1b=c"), "abc");
    assert_eq!(strip_ansi("\x1bPq#0;2;0;0;0\x1b\\after"), "after");
    assert_eq!(strip_ansi("bell\x07 back\x08space\ttab"), "bell backspace\ttab");
    assert_eq!(strip_ansi("\u{9b}32mgreen\u{9b}0m é 😀"), "green é 😀");
    // A malformed CSI ends where a non-CSI character starts; that character stays.
    assert_eq!(strip_ansi("\x1b[12é"), "é");
    // Cut-off sequences at the end are dropped.
    assert_eq!(strip_ansi("text\x1b[3"), "text");
    assert_eq!(strip_ansi("text\x1b"), "text");
}

#[test]
fn event_lines_escape_exactly_as_serde_json() {
    // Every character up to U+00FF and some beyond, alone and in runs, with every kind.
    let mut chars: Vec<char> = (0u32..0x100).filter_map(char::from_u32).collect();
    chars.extend(['\u{2028}', '\u{fffd}', '😀']);
    for c in &chars {
        let data = format!("a{c}{c}b");
        let expected = format!("[1.5,\"o\",{}]", serde_json::to_string(&data).unwrap());
        assert_eq!(event_line(1.5, EventKind::Output, &data), expected, "{c:?}");
    }
    let all: String = chars.iter().collect();
    let line = event_line(3.25, EventKind::Input, &all);
    assert_eq!(parse_event(&line).unwrap(), Event { time: 3.25, kind: EventKind::Input, data: all.clone() });
    let mut out = b"prefix".to_vec();
    write_event(&mut out, 3_250_000, EventKind::Input, &all);
    assert_eq!(&out[6..], line.as_bytes(), "write_event appends the same bytes");
}

#[test]
fn long_data_escapes_exactly_as_serde_json_wherever_the_escapes_fall() {
    // Escapes before, on and after the edges of the blocks tested at once, runs of clean
    // text longer than a block, and multi-byte characters across those edges.
    let pieces = ["a", "\"", "\\", "\n", "\r", "\u{1}", "\u{1f}", "é", "😀", " ", "\u{7f}", "xyzw"];
    let mut seed = 7u32;
    for len in 0..300 {
        let mut data = String::new();
        while data.len() < len {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let clean = !(seed >> 8).is_multiple_of(3);
            data.push_str(if clean { "abcdefgh" } else { pieces[(seed >> 16) as usize % pieces.len()] });
        }
        let expected = format!("[0.5,\"o\",{}]", serde_json::to_string(&data).unwrap());
        assert_eq!(event_line(0.5, EventKind::Output, &data), expected, "{data:?}");
    }
    for at in [0, 1, 30, 31, 32, 33, 63, 64, 65, 99] {
        let mut data = "x".repeat(100);
        data.replace_range(at..=at, "\n");
        let expected = format!("[0.5,\"o\",{}]", serde_json::to_string(&data).unwrap());
        assert_eq!(event_line(0.5, EventKind::Output, &data), expected, "newline at {at}");
    }
}

#[test]
fn event_times_are_microseconds_trimmed() {
    let time = |micros: u64| {
        let mut out = Vec::new();
        write_event(&mut out, micros, EventKind::Marker, "");
        String::from_utf8(out).unwrap().split(',').next().unwrap()[1..].to_string()
    };
    assert_eq!(time(0), "0.0");
    assert_eq!(time(1), "0.000001");
    assert_eq!(time(10), "0.00001");
    assert_eq!(time(1_000_000), "1.0");
    assert_eq!(time(1_500_000), "1.5");
    assert_eq!(time(12_345_678), "12.345678");
    assert_eq!(time(86_400_000_100), "86400.0001");
}

#[test]
fn push_into_appends_what_push_returns() {
    let bytes = noise(4096);
    let (mut a, mut b) = (Utf8Decoder::new(), Utf8Decoder::new());
    let mut appended = String::from("kept:");
    let mut returned = String::from("kept:");
    for chunk in bytes.chunks(37) {
        a.push_into(chunk, &mut appended);
        returned.push_str(&b.push(chunk));
    }
    assert_eq!(appended, returned);
    assert_eq!(a.replaced_bytes(), b.replaced_bytes());
}
