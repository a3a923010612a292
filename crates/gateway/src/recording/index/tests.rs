use std::time::{Duration, Instant};

use super::*;
use crate::recording::writer::CastWriter;
use crate::store::{RecordingRow, Store};

/// A recording made by the real writer: clear screens, cursor moves, colours, two
/// resizes, a UTF-8 character split across reads (and so across events), and enough
/// output to need keyframes by size as well as by time.
fn sample(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("sample.cast");
    let t0 = Instant::now();
    let at = |secs: f64| t0 + Duration::from_secs_f64(secs);
    let mut w = CastWriter::new(File::create(&path).unwrap(), t0, 64 << 20, false);
    w.header(&Header { width: 80, height: 24, timestamp: 0, term: None, title: None }, t0).unwrap();
    w.output(b"hello\r\nabc", at(0.1)).unwrap();
    w.output(b"def\r\n", at(0.3)).unwrap();
    w.output(b"\x1b[2J\x1b[Htop line\r\n\x1b[5;10Hmoved \x1b[31mred\x1b[0m\r\n", at(1.0)).unwrap();
    w.resize(100, 30, at(6.0)).unwrap();
    w.output(b"caf\xc3", at(7.0)).unwrap();
    w.output(b"\xa9 ok\r\n", at(7.2)).unwrap();
    for i in 0..3000u32 {
        let secs = 8.0 + f64::from(i) * 0.002;
        let line = format!("\x1b[3{}mline {i} {}\x1b[0m\r\n", i % 8, "x".repeat(40));
        w.output(line.as_bytes(), at(secs)).unwrap();
    }
    w.output(b"\x1b[2J\x1b[3;3Hafter clear zebra\r\n", at(15.0)).unwrap();
    w.resize(60, 20, at(21.0)).unwrap();
    w.output("\x1b[10;5H\u{4e2d}\u{6587} wide \x1b[7minverse\x1b[0m".as_bytes(), at(22.0)).unwrap();
    w.output(b" no newline at the end", at(27.5)).unwrap();
    w.finish(at(28.0)).unwrap();
    path
}

/// Indexes a whole file in steps of `budget` bytes, resuming each step from the stored
/// state and last keyframe as the indexer does.
fn index_in_steps(path: &Path, budget: u64) -> (Vec<TextLine>, Vec<Keyframe>) {
    let (header, header_len) = read_header(path).unwrap();
    let (mut lines, mut keyframes) = (Vec::new(), Vec::<Keyframe>::new());
    let mut state: Option<IndexState> = None;
    for _ in 0..10_000 {
        let mut index = match state.take() {
            None => CastIndex::start(&header, header_len),
            Some(state) => {
                let last = keyframes.last();
                let indexed = state.offset;
                let mut index = CastIndex::resume(&header, last, state);
                let from = last.map_or(header_len, |k| k.offset);
                let (old, _) = read_lines(path, from, u64::MAX, |l| l.end > indexed).unwrap();
                old.iter().for_each(|l| index.replay(l));
                index
            }
        };
        let (new, at_end) = read_lines(path, index.offset(), budget, |_| false).unwrap();
        new.iter().for_each(|l| index.feed(l));
        if at_end {
            index.finish();
        }
        let batch = index.take_batch("r");
        lines.extend(batch.lines);
        keyframes.extend(batch.keyframes);
        if batch.state.done {
            return (lines, keyframes);
        }
        state = Some(batch.state);
    }
    panic!("indexing did not finish");
}

fn apply(parser: &mut vt100::Parser, event: &Event) {
    match event.kind {
        EventKind::Output => parser.process(event.data.as_bytes()),
        EventKind::Resize => {
            let (cols, rows) = parse_resize(&event.data).unwrap();
            parser.screen_mut().set_size(rows, cols);
        }
        _ => {}
    }
}

/// The screen at `t` by playing everything from the start.
fn played_to(path: &Path, t: f64) -> vt100::Parser {
    let (header, header_len) = read_header(path).unwrap();
    let mut parser = vt100::Parser::new(header.height, header.width, 0);
    let window = read_window(path, header_len, (header.width, header.height), None, t, u64::MAX).unwrap();
    window.events.iter().for_each(|e| apply(&mut parser, e));
    parser
}

fn same_screen(a: &vt100::Screen, b: &vt100::Screen, what: &str) {
    assert_eq!(a.size(), b.size(), "{what}: size");
    assert_eq!(a.contents(), b.contents(), "{what}: text");
    assert_eq!(a.cursor_position(), b.cursor_position(), "{what}: cursor");
    assert_eq!(a.contents_formatted(), b.contents_formatted(), "{what}: cells and attributes");
}

#[test]
fn seeking_from_a_keyframe_gives_the_screen_of_playing_from_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = sample(dir.path());
    let (_, keyframes) = index_in_steps(&path, u64::MAX);
    // By time (every 5 s once the screen changed) and by size (the 3000 coloured lines).
    assert!(keyframes.len() >= 5, "{:?}", keyframes.iter().map(|k| k.t).collect::<Vec<_>>());
    assert!(keyframes.windows(2).all(|w| w[0].t <= w[1].t && w[0].offset < w[1].offset));
    assert!(keyframes.iter().any(|k| (k.cols, k.rows) == (100, 30)));
    assert!(keyframes.iter().any(|k| (k.cols, k.rows) == (60, 20)));
    let dense: Vec<_> = keyframes.iter().filter(|k| k.t > 8.0 && k.t < 14.5).collect();
    assert!(dense.len() >= 2, "200 KiB of output within 6 s needs keyframes by size");

    for t in [0.2, 1.5, 6.5, 7.1, 7.3, 9.0, 10.5, 12.5, 15.5, 21.5, 25.0, 30.0] {
        let keyframe = keyframes.iter().rev().find(|k| k.t <= t);
        let mut seek = match keyframe {
            Some(k) => {
                let mut parser = vt100::Parser::new(k.rows, k.cols, 0);
                parser.process(&k.screen);
                parser
            }
            None => vt100::Parser::new(24, 80, 0),
        };
        let (header, header_len) = read_header(&path).unwrap();
        let (offset, size) =
            keyframe.map_or((header_len, (header.width, header.height)), |k| (k.offset, (k.cols, k.rows)));
        let window = read_window(&path, offset, size, None, t, u64::MAX).unwrap();
        assert_eq!(window.at_end, t >= 27.5, "at {t}");
        window.events.iter().for_each(|e| apply(&mut seek, e));
        same_screen(seek.screen(), played_to(&path, t).screen(), &format!("at {t}"));
    }
    let end = played_to(&path, 30.0);
    assert!(
        end.screen().contents().contains("\u{4e2d}\u{6587} wide inverse no newline"),
        "{}",
        end.screen().contents()
    );
}

#[test]
fn text_lines_are_stripped_joined_across_events_and_timed_by_their_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = sample(dir.path());
    let (lines, _) = index_in_steps(&path, u64::MAX);
    let find = |text: &str| lines.iter().find(|l| l.line == text).unwrap_or_else(|| panic!("no line {text:?}"));
    assert!((find("hello").t - 0.1).abs() < 0.01);
    assert!((find("abcdef").t - 0.1).abs() < 0.01, "a line split across events starts with its first part");
    assert!((find("café ok").t - 7.0).abs() < 0.01, "the split character is whole");
    assert!(find("moved red").t >= 1.0);
    assert!((find("after clear zebra").t - 15.0).abs() < 0.01);
    // The last line has no newline: indexed when the recording is finished.
    assert!(find("\u{4e2d}\u{6587} wide inverse no newline at the end").t >= 22.0);
    assert_eq!(lines.iter().filter(|l| l.line.starts_with("line ")).count(), 3000);
    assert!(lines.iter().all(|l| !l.line.contains('\x1b') && !l.line.contains('\r')));
    assert!(lines.windows(2).all(|w| w[0].t <= w[1].t));
}

#[test]
fn indexing_in_small_steps_finds_what_one_pass_finds() {
    let dir = tempfile::tempdir().unwrap();
    let path = sample(dir.path());
    let (lines, keyframes) = index_in_steps(&path, u64::MAX);
    for budget in [1, 700, 20_000] {
        let (step_lines, step_keyframes) = index_in_steps(&path, budget);
        assert_eq!(step_lines, lines, "budget {budget}");
        let at = |k: &[Keyframe]| k.iter().map(|k| (k.t.to_bits(), k.offset, k.cols, k.rows)).collect::<Vec<_>>();
        assert_eq!(at(&step_keyframes), at(&keyframes), "budget {budget}");
    }
}

#[test]
fn a_hostile_resize_cannot_make_the_emulator_huge() {
    let header = Header { width: 65535, height: 65535, timestamp: 0, term: None, title: None };
    let mut index = CastIndex::start(&header, 0);
    assert_eq!(index.screen().size(), (MAX_ROWS, MAX_COLS));
    let resize = Event { time: 1.0, kind: EventKind::Resize, data: "1x1".into() };
    index.feed(&CastLine { event: Some(resize), len: 10, end: 10 });
    assert_eq!(index.screen().size(), (MIN_ROWS, MIN_COLS));
    let unknown = Header { width: 0, height: 0, timestamp: 0, term: None, title: None };
    assert_eq!(CastIndex::start(&unknown, 0).screen().size(), (24, 80));
}

#[test]
fn search_terms_are_quoted_so_nothing_typed_is_query_syntax() {
    assert_eq!(fts_query("zebra"), Some("\"zebra\"".into()));
    assert_eq!(fts_query("  alpha   OR  beta "), Some("\"alpha\" \"OR\" \"beta\"".into()));
    assert_eq!(fts_query("say\"hi"), Some("\"say\"\"hi\"".into()));
    assert_eq!(fts_query("NEAR(a b)"), Some("\"NEAR(a\" \"b)\"".into()));
    for nothing in ["", "   ", "\"", "*", "\" * ( ) : ^ -", "\"\"\""] {
        assert_eq!(fts_query(nothing), None, "{nothing:?}");
    }
    let many = "w ".repeat(100);
    assert_eq!(fts_query(&many).unwrap().matches('"').count(), 2 * MAX_TERMS);
}

fn row(id: &str, started_at: i64) -> RecordingRow {
    RecordingRow {
        id: id.into(),
        session_id: format!("s{id}"),
        user: "vendor".into(),
        node: "gpu-01".into(),
        login: "ubuntu".into(),
        client_addr: "192.0.2.1:1".into(),
        command: None,
        path: format!("/nonexistent/{id}.cast"),
        bytes: 0,
        capped_bytes: 0,
        replaced_bytes: 0,
        complete: false,
        started_at,
        ended_at: None,
        duration_us: None,
    }
}

#[tokio::test]
async fn hostile_searches_run_as_plain_words_against_the_real_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open("sqlite://t.db", dir.path(), true).await.unwrap();
    let texts =
        ["alpha OR beta", "NEAR(gamma delta)", "say \"hi\" there", "star* wars", "col:val ^caret", "plain text"];
    store.insert_recording(&row("aa", 1)).await.unwrap();
    let state = IndexState { offset: 0, text_bytes: 0, pending: String::new(), pending_t: 0.0, done: true };
    let lines = texts.iter().enumerate().map(|(i, l)| TextLine { t: i as f64, line: (*l).into() }).collect();
    let batch = IndexBatch { recording_id: "aa".into(), lines, keyframes: Vec::new(), state };
    store.store_index_batches(&[batch]).await.unwrap();
    let search = |q: &'static str| {
        let store = store.clone();
        async move {
            let fts = fts_query(q).unwrap();
            let hits = store.search_text(&fts, None, 50).await.unwrap_or_else(|e| panic!("{q:?}: {e:#}"));
            hits.into_iter().map(|h| h.line).collect::<Vec<_>>()
        }
    };
    assert_eq!(search("OR").await, ["alpha OR beta"]);
    assert_eq!(search("alpha OR gamma").await, Vec::<String>::new(), "OR is a word, so every word must match");
    assert_eq!(search("NEAR(gamma").await, ["NEAR(gamma delta)"]);
    assert_eq!(search("\"hi\" say").await, ["say \"hi\" there"]);
    assert_eq!(search("star*").await, ["star* wars"]);
    assert_eq!(search("sta*").await, Vec::<String>::new(), "no prefix queries");
    assert_eq!(search("col:val").await, ["col:val ^caret"]);
    assert_eq!(search("^caret").await, ["col:val ^caret"]);
    assert_eq!(search("TEXT Plain").await, ["plain text"]);
    assert_eq!(search("a\"b\" OR \"c").await, Vec::<String>::new());
}
