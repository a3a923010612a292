use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use portcullis_proto::asciicast::{Event, parse_resize};

use super::*;
use crate::store::RecordingFilter;

async fn setup(cap_bytes: u64, record_input: bool) -> (tempfile::TempDir, Store, Recorder) {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open("sqlite://t.db", tmp.path(), true).await.unwrap();
    let recorder = Recorder::new(tmp.path().join("recordings"), store.clone(), cap_bytes, record_input).unwrap();
    (tmp, store, recorder)
}

fn meta(user: &str, node: &str) -> RecordingMeta {
    RecordingMeta {
        session_id: format!("s-{user}-{node}"),
        user: user.into(),
        node: node.into(),
        login: "vendor".into(),
        client_addr: "192.0.2.7:50000".into(),
        command: None,
        width: 80,
        height: 24,
        term: Some("xterm-256color".into()),
    }
}

fn read(path: &Path) -> (Header, Vec<Event>, bool) {
    read_cast(&String::from_utf8_lossy(&fs::read(path).unwrap())).unwrap()
}

fn output_text(events: &[Event]) -> String {
    events.iter().filter(|e| e.kind == EventKind::Output).map(|e| e.data.as_str()).collect()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A writer on a fresh file, its clock at `t0`.
fn writer(cap_bytes: u64) -> (tempfile::TempDir, PathBuf, CastWriter, Instant) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("w.cast");
    let t0 = Instant::now();
    let mut w = CastWriter::new(fs::File::create(&path).unwrap(), t0, cap_bytes, false);
    let header = Header { width: 80, height: 24, timestamp: 0, term: None, title: None };
    w.header(&header, t0).unwrap();
    (tmp, path, w, t0)
}

#[tokio::test]
async fn a_session_is_readable_while_it_runs_and_complete_after() {
    let (_tmp, store, recorder) = setup(64 << 20, false).await;
    let begun = Instant::now();
    let mut rec = recorder.start(meta("alice", "gpu-01")).await.unwrap();
    assert_eq!(rec.id().len(), 32);
    assert!(rec.path().starts_with(recorder.dir()));
    assert_eq!(mode(rec.path()), 0o600);
    assert_eq!(mode(recorder.dir()), 0o700);
    assert_eq!(mode(rec.path().parent().unwrap()), 0o700);

    rec.output(b"$ echo caf\xc3").unwrap();
    rec.output(b"\xa9 \xf0\x9f").unwrap();
    rec.output(b"\x98\x80\r\n").unwrap();
    rec.resize(132, 43).unwrap();
    rec.input(b"not recorded").unwrap();
    rec.tick().unwrap();

    let (header, events, truncated) = read(rec.path());
    assert_eq!((header.width, header.height, header.term.as_deref()), (80, 24, Some("xterm-256color")));
    assert_eq!(header.title.as_deref(), Some("vendor@gpu-01 (alice)"));
    assert!(!truncated);
    assert_eq!(output_text(&events), "$ echo café 😀\r\n");
    let resize = events.iter().find(|e| e.kind == EventKind::Resize).unwrap();
    assert_eq!(parse_resize(&resize.data), Some((132, 43)));
    assert!(events.iter().all(|e| e.kind != EventKind::Input));
    assert!(events.windows(2).all(|w| w[0].time <= w[1].time));

    let row = store.get_recording(rec.id()).await.unwrap().unwrap();
    assert!(!row.complete && row.ended_at.is_none() && row.duration_us.is_none());
    assert_eq!(recorder.path_of(&row), rec.path());

    let id = rec.id().to_string();
    tokio::time::sleep(Duration::from_millis(30)).await;
    rec.finish(&store).await.unwrap();
    let wall = begun.elapsed();
    let row = store.get_recording(&id).await.unwrap().unwrap();
    assert!(row.complete);
    assert!(row.ended_at.is_some());
    // The length in the file's own clock, finer than the row's whole-second times: past
    // the last event (and the pause after it), within the time the test took.
    let last = events.last().unwrap().time;
    let length = row.duration_us.expect("a finished recording says its length") as f64 / 1e6;
    assert!(length >= last + 0.03 && length <= wall.as_secs_f64(), "{length} s: last event {last} s, wall {wall:?}");
    assert_eq!((row.bytes, row.capped_bytes, row.replaced_bytes), (19, 0, 0));
    assert_eq!((row.user.as_str(), row.node.as_str(), row.login.as_str()), ("alice", "gpu-01", "vendor"));
}

#[tokio::test]
async fn input_is_recorded_only_when_asked() {
    let (_tmp, store, recorder) = setup(64 << 20, true).await;
    let mut rec =
        recorder.start(RecordingMeta { command: Some("nvidia-smi".into()), ..meta("bob", "gpu-02") }).await.unwrap();
    rec.output(b"prompt$ ").unwrap();
    rec.input(b"ls\r").unwrap();
    rec.output(b"file\r\n").unwrap();
    let path = rec.path().to_path_buf();
    rec.finish(&store).await.unwrap();
    let (header, events, _) = read(&path);
    assert_eq!(header.title.as_deref(), Some("vendor@gpu-02 (bob): nvidia-smi"));
    let kinds: Vec<_> = events.iter().map(|e| (e.kind, e.data.as_str())).collect();
    assert_eq!(kinds, [(EventKind::Output, "prompt$ "), (EventKind::Input, "ls\r"), (EventKind::Output, "file\r\n")]);
}

#[test]
fn output_coalesces_within_gaps_and_spans() {
    let (_tmp, path, mut w, t0) = writer(u64::MAX);
    let ms = |n: u64| t0 + Duration::from_millis(n);
    w.output(b"a", ms(0)).unwrap();
    w.output(b"b", ms(5)).unwrap(); // 5 ms later: same event
    w.output(b"c", ms(30)).unwrap(); // a pause: a new event
    // A steady trickle every 5 ms for 300 ms is cut every 100 ms.
    for i in 0..60 {
        w.output(b"t", ms(500 + 5 * i)).unwrap();
    }
    w.output(&[b'x'; 20_000], ms(900)).unwrap(); // over 16 KiB: out at once
    w.output(b"y", ms(901)).unwrap();
    w.tick(ms(902)).unwrap();
    let (_, events, _) = read(&path);
    let data: Vec<_> = events.iter().map(|e| e.data.len()).collect();
    assert_eq!(data, [2, 1, 20, 20, 20, 20_000, 1]);
    assert_eq!(events[1].time, 0.03);
    assert_eq!(events[2].time, 0.5);
    assert_eq!(events[3].time, 0.6);
}

#[test]
fn lines_reach_the_file_at_ticks_or_each_second() {
    let (_tmp, path, mut w, t0) = writer(u64::MAX);
    let header_only = fs::metadata(&path).unwrap().len();
    w.output(b"one", t0).unwrap();
    w.output(b"two", t0 + Duration::from_millis(500)).unwrap();
    assert_eq!(fs::metadata(&path).unwrap().len(), header_only, "buffered until a tick");
    // No tick, but a second has passed since the last write.
    w.output(b"three", t0 + Duration::from_millis(1000)).unwrap();
    assert_eq!(output_text(&read(&path).1), "onetwothree");
}

#[test]
fn written_through_marks_where_the_file_is_complete() {
    let (_tmp, path, mut w, t0) = writer(u64::MAX);
    assert_eq!(w.written_through(), Duration::ZERO);
    // At each step: what the file held then, and the mark the writer gave with it.
    let mut seen = Vec::new();
    let mut at = Duration::ZERO;
    for i in 0u64..400 {
        // Gaps of 1..=40 ms (some coalesce, some not); a tick every 7th step, a big chunk
        // (written out at once past 64 KiB) every 50th.
        at += Duration::from_millis(1 + (i * 37) % 40);
        let chunk = if i % 50 == 49 { vec![b'z'; 20_000] } else { format!("line {i}\r\n").into_bytes() };
        w.output(&chunk, t0 + at).unwrap();
        if i % 7 == 6 {
            w.tick(t0 + at).unwrap();
            assert_eq!(w.written_through(), at, "a tick completes the file up to now");
        }
        seen.push((read(&path).1.len(), w.written_through()));
    }
    w.finish(t0 + at).unwrap();
    let (_, events, _) = read(&path);
    let mut last = Duration::ZERO;
    for (in_file, through) in seen {
        assert!(through >= last, "the mark never goes back");
        last = through;
        let before_mark = events.iter().filter(|e| ((e.time * 1e6).round() as u128) < through.as_micros()).count();
        assert!(before_mark <= in_file, "an event before {through:?} reached the file later");
    }
    assert!(last > Duration::from_secs(1), "the mark moved on: {last:?}");
}

#[tokio::test]
async fn its_mark_follows_the_present_while_everything_seen_is_written() {
    let (_tmp, _store, recorder) = setup(64 << 20, false).await;
    let mut rec = recorder.start(meta("alice", "gpu-01")).await.unwrap();
    let mark = rec.mark();
    let idle = mark.through();
    std::thread::sleep(Duration::from_millis(30));
    // Less the mark's 1 ms margin, which a recording younger than that saturates at 0.
    assert!(mark.through() >= idle + Duration::from_millis(29), "nothing seen: complete up to the present");
    rec.output(b"pending\r\n").unwrap();
    let held = mark.through();
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(mark.through(), held, "output seen but not written: the mark waits");
    let (_, events, _) = read(rec.path());
    assert!(events.is_empty(), "not in the file yet: {events:?}");
    let stamped = |events: &[Event]| Duration::from_micros((events[0].time * 1e6).round() as u64);
    rec.tick().unwrap();
    let (_, events, _) = read(rec.path());
    assert!(stamped(&events) >= held, "stamped at or after the mark it held: {events:?} {held:?}");
    assert!(mark.through() > stamped(&events), "written out: past the event");
    rec.finish(&recorder.store).await.unwrap();
}

#[tokio::test]
async fn output_past_the_cap_is_counted_not_written() {
    let cap = 8 * 1024;
    let (_tmp, store, recorder) = setup(cap, false).await;
    let mut rec = recorder.start(meta("carol", "gpu-03")).await.unwrap();
    let chunk = [b'z'; 1000];
    for _ in 0..50 {
        rec.output(&chunk).unwrap();
        rec.tick().unwrap();
    }
    rec.resize(100, 30).unwrap();
    let (path, id) = (rec.path().to_path_buf(), rec.id().to_string());
    // Capped, nothing is left unwritten: the mark follows the present until the end
    // stamps its note, and then stops before the note.
    let mark = rec.mark();
    let before = mark.through();
    std::thread::sleep(Duration::from_millis(20));
    let later = mark.through();
    // Less the mark's 1 ms margin, which a recording younger than that saturates at 0.
    assert!(later >= before + Duration::from_millis(19), "capped and caught up: {before:?} then {later:?}");
    rec.finish(&store).await.unwrap();
    let ended = mark.through();
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(mark.through(), ended, "the end's note was stamped: the mark no longer follows the present");

    let size = fs::metadata(&path).unwrap().len();
    let (_, events, _) = read(&path);
    let note = events.last().unwrap();
    assert!(note.data.contains("recording capped at 8192 bytes"), "{}", note.data);
    assert!(note.time >= ended.as_secs_f64(), "the note at {} s lies at or after the mark {ended:?}", note.time);
    assert!(size <= cap + note.data.len() as u64 + 32, "{size} bytes");
    assert!(events.iter().all(|e| e.kind == EventKind::Output), "nothing recorded past the cap");
    let recorded = output_text(&events[..events.len() - 1]).len() as i64;
    let row = store.get_recording(&id).await.unwrap().unwrap();
    assert_eq!(row.bytes, 50_000);
    assert_eq!(row.capped_bytes, 50_000 - recorded);
    assert!(note.data.contains(&format!("; {} further bytes", row.capped_bytes)));
    assert!(row.complete);
}

#[tokio::test]
async fn a_crash_leaves_a_readable_file_marked_incomplete_at_the_next_start() {
    let (tmp, store, recorder) = setup(64 << 20, false).await;
    let mut rec = recorder.start(meta("dave", "gpu-04")).await.unwrap();
    rec.output(b"before the crash\r\n").unwrap();
    rec.tick().unwrap();
    rec.output(b"lost").unwrap();
    let (path, id) = (rec.path().to_path_buf(), rec.id().to_string());
    std::mem::forget(rec); // a crash runs no destructors

    let (_, events, truncated) = read(&path);
    assert_eq!(output_text(&events), "before the crash\r\n");
    assert!(!truncated);

    let restarted = Recorder::new(tmp.path().join("recordings"), store.clone(), 64 << 20, false).unwrap();
    assert_eq!(restarted.mark_incomplete_at_start().await.unwrap(), 1);
    let row = store.get_recording(&id).await.unwrap().unwrap();
    assert!(!row.complete);
    let mtime = fs::metadata(&path).unwrap().modified().unwrap().duration_since(UNIX_EPOCH).unwrap().as_secs();
    assert_eq!(row.ended_at, Some(mtime as i64));
    assert_eq!(row.bytes, 18);
    assert_eq!(restarted.mark_incomplete_at_start().await.unwrap(), 0);
}

#[tokio::test]
async fn a_recording_dropped_unfinished_is_ended_incomplete() {
    let (_tmp, store, recorder) = setup(64 << 20, false).await;
    let mut rec = recorder.start(meta("erin", "gpu-05")).await.unwrap();
    rec.output(b"cancelled").unwrap();
    let (path, id) = (rec.path().to_path_buf(), rec.id().to_string());
    drop(rec);
    assert_eq!(output_text(&read(&path).1), "cancelled", "buffered output is kept");
    let mut row = store.get_recording(&id).await.unwrap().unwrap();
    for _ in 0..500 {
        if row.ended_at.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        row = store.get_recording(&id).await.unwrap().unwrap();
    }
    assert!(row.ended_at.is_some() && !row.complete);
    assert_eq!(row.bytes, 9);
}

#[tokio::test]
async fn a_write_error_reaches_the_relay_and_the_row_stays_incomplete() {
    let (_tmp, store, recorder) = setup(64 << 20, false).await;
    let mut rec = recorder.start(meta("frank", "gpu-06")).await.unwrap();
    // /dev/full fails every write with ENOSPC, even for root.
    let full = fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    rec.writer = CastWriter::new(full, Instant::now(), 64 << 20, false);
    rec.output(b"buffered").unwrap();
    let err = rec.tick().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(28), "{err}");
    assert!(rec.output(b"more").unwrap_err().to_string().contains("failed earlier"));
    let id = rec.id().to_string();
    let err = rec.finish(&store).await.unwrap_err();
    assert!(format!("{err:#}").contains("cannot write recording"), "{err:#}");
    let row = store.get_recording(&id).await.unwrap().unwrap();
    assert!(row.ended_at.is_some() && !row.complete);
}

#[tokio::test]
async fn plain_text_costs_at_most_a_tenth_more() {
    let (_tmp, store, recorder) = setup(64 << 20, false).await;
    let mut rec = recorder.start(meta("grace", "gpu-07")).await.unwrap();
    let mut text = Vec::new();
    let mut n = 0;
    while text.len() < 1 << 20 {
        text.extend_from_slice(
            format!("{n:06} the quick brown fox jumps over the lazy dog, again and again\r\n").as_bytes(),
        );
        n += 1;
    }
    for chunk in text.chunks(4096) {
        rec.output(chunk).unwrap();
    }
    let path = rec.path().to_path_buf();
    rec.finish(&store).await.unwrap();
    let size = fs::metadata(&path).unwrap().len();
    assert!(size as f64 <= 1.1 * text.len() as f64, "{size} bytes for {}", text.len());
    assert_eq!(output_text(&read(&path).1).as_bytes(), text);
}

#[tokio::test]
async fn binary_output_is_replaced_and_counted() {
    let (_tmp, store, recorder) = setup(64 << 20, false).await;
    let mut rec = recorder.start(meta("heidi", "gpu-08")).await.unwrap();
    let noise: Vec<u8> = (0u32..65536).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    rec.output(&noise).unwrap();
    rec.output(b"\xe2\x82").unwrap(); // cut off by the end of the session
    let (path, id) = (rec.path().to_path_buf(), rec.id().to_string());
    rec.finish(&store).await.unwrap();
    let row = store.get_recording(&id).await.unwrap().unwrap();
    assert!(row.replaced_bytes > 1000, "{}", row.replaced_bytes);
    assert_eq!(row.bytes, 65538);
    assert!(fs::metadata(&path).unwrap().len() < 3 * 65536);
    assert!(output_text(&read(&path).1).ends_with('\u{fffd}'));
}

#[tokio::test]
async fn controls_a_terminal_ignores_are_dropped_not_escaped() {
    let (_tmp, store, recorder) = setup(64 << 20, false).await;
    let mut rec = recorder.start(meta("ines", "gpu-09")).await.unwrap();
    rec.output(&vec![0u8; 1 << 20]).unwrap();
    rec.output(b"\x1b[1mbold\x1b[0m\x07\r\n").unwrap();
    let (path, id) = (rec.path().to_path_buf(), rec.id().to_string());
    rec.finish(&store).await.unwrap();
    let size = fs::metadata(&path).unwrap().len();
    assert!(size < 4096, "1 MiB of NULs cost {size} bytes");
    assert_eq!(output_text(&read(&path).1), "\x1b[1mbold\x1b[0m\x07\r\n", "escapes and BEL are kept");
    let row = store.get_recording(&id).await.unwrap().unwrap();
    assert_eq!(row.replaced_bytes, 1 << 20);
}

#[tokio::test]
async fn recordings_are_listed_by_user_node_and_time() {
    let (_tmp, store, recorder) = setup(64 << 20, false).await;
    for (user, node) in [("ivan", "gpu-01"), ("ivan", "gpu-02"), ("judy", "gpu-01")] {
        let rec = recorder.start(meta(user, node)).await.unwrap();
        rec.finish(&store).await.unwrap();
    }
    let all = store.list_recordings(&RecordingFilter::default()).await.unwrap();
    assert_eq!(all.len(), 3);
    let ivan = RecordingFilter { user: Some("ivan".into()), ..Default::default() };
    assert_eq!(store.list_recordings(&ivan).await.unwrap().len(), 2);
    let gpu1 = RecordingFilter { node: Some("gpu-01".into()), ..Default::default() };
    assert!(store.list_recordings(&gpu1).await.unwrap().iter().all(|r| r.node == "gpu-01"));
    let both = RecordingFilter { user: Some("judy".into()), node: Some("gpu-01".into()), ..Default::default() };
    assert_eq!(store.list_recordings(&both).await.unwrap().len(), 1);
    let later = RecordingFilter { since: Some(now() + 3600), ..Default::default() };
    assert!(store.list_recordings(&later).await.unwrap().is_empty());
    let one = RecordingFilter { limit: Some(1), ..Default::default() };
    assert_eq!(store.list_recordings(&one).await.unwrap().len(), 1);
    assert!(store.get_recording("nope").await.unwrap().is_none());
    let json = serde_json::to_value(&all[0]).unwrap();
    assert_eq!(json["complete"], true);
    assert!(json["started_at"].is_i64());
}
