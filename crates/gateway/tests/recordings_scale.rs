//! 10,000 real recordings in the real store, indexed by the real indexer: keyset pages,
//! filters and search stay correct (no duplicates, no skips, exact filter semantics) and
//! their timings are printed (not asserted: machines differ).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use portcullis_gateway::recording::index::fts_query;
use portcullis_gateway::recording::indexer::Indexer;
use portcullis_gateway::store::{RecordingEnd, RecordingQuery, RecordingRow, Store};

const COUNT: usize = 10_000;
const USERS: usize = 10;
const NODES: usize = 8;
const BASE: i64 = 1_700_000_000;
/// Recordings that print the rare word.
const RARE_EVERY: usize = 1_429;

fn user(i: usize) -> String {
    format!("user{}", i % USERS)
}

fn node(i: usize) -> String {
    format!("gpu-{:02}", (i * 7) % NODES)
}

/// Two recordings start in each second, so the id must break ties.
fn started_at(i: usize) -> i64 {
    BASE + (i / 2) as i64 * 60
}

fn id(i: usize) -> String {
    // Not in start order, like random ids.
    format!("{:016x}{:016x}", (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15), i)
}

/// A small real asciicast file.
fn write_cast(path: &Path, i: usize) {
    let mut text = String::with_capacity(1024);
    text.push_str("{\"version\":2,\"width\":80,\"height\":24,\"timestamp\":0}\n");
    let mut line = |t: f64, data: &str| {
        let _ = writeln!(text, "[{t},\"o\",{}]", serde_json::to_string(data).unwrap());
    };
    line(0.05, &format!("\u{1b}[1;32m{}@{}\u{1b}[0m:~$ make build-{i}\r\n", user(i), node(i)));
    line(0.8, "compile ok: 42 targets\r\n");
    if i.is_multiple_of(RARE_EVERY) {
        line(1.5, "unpacking zanzibar firmware\r\n");
    }
    line(2.25, &format!("\u{1b}[2J\u{1b}[Hstep {i} done\r\n"));
    line(6.5, "exit\r\n");
    std::fs::write(path, text).unwrap();
}

fn keys(rows: &[RecordingRow]) -> Vec<(i64, String)> {
    rows.iter().map(|r| (r.started_at, r.id.clone())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_recordings_page_filter_and_search_correctly() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open("sqlite://t.db", dir.path(), true).await.unwrap();
    let casts = dir.path().join("recordings");
    std::fs::create_dir_all(&casts).unwrap();

    let started = Instant::now();
    for i in 0..COUNT {
        let path = casts.join(format!("{}.cast", id(i)));
        write_cast(&path, i);
        let row = RecordingRow {
            id: id(i),
            session_id: format!("s{i}"),
            user: user(i),
            node: node(i),
            login: "ubuntu".into(),
            client_addr: "192.0.2.1:2222".into(),
            command: None,
            path: path.to_str().unwrap().into(),
            bytes: 0,
            capped_bytes: 0,
            replaced_bytes: 0,
            complete: false,
            started_at: started_at(i),
            ended_at: None,
            duration_us: None,
        };
        store.insert_recording(&row).await.unwrap();
        let end = RecordingEnd {
            ended_at: started_at(i) + 7,
            duration_us: 6_500_000,
            bytes: 100,
            capped_bytes: 0,
            replaced_bytes: 0,
            complete: !i.is_multiple_of(10),
        };
        store.finish_recording(&row.id, &end).await.unwrap();
    }
    eprintln!("made {COUNT} recordings (files and rows) in {:?}", started.elapsed());

    let started = Instant::now();
    let mut indexer = Indexer::default();
    let mut finished = 0;
    for _ in 0..100 {
        let (more, stats) = indexer.pass_with_stats(&store).await.unwrap();
        finished += stats.finished;
        if !more && stats.seen == 0 {
            break;
        }
    }
    eprintln!("indexed {COUNT} recordings in {:?}", started.elapsed());
    assert_eq!(finished, COUNT, "each recording is finished exactly once");
    let (_, again) = indexer.pass_with_stats(&store).await.unwrap();
    assert_eq!(again.seen, 0, "a finished index is not looked at again");

    // Every recording, newest first, in pages: no duplicates, no skips, strict order.
    let mut expected: Vec<(i64, String)> = (0..COUNT).map(|i| (started_at(i), id(i))).collect();
    expected.sort_by(|a, b| b.cmp(a));
    let page = |after: Option<(i64, String)>, limit: i64| RecordingQuery { after, limit, ..Default::default() };
    let timed = Instant::now();
    let first = store.page_recordings(&page(None, 50)).await.unwrap();
    eprintln!("first page (50): {:?}", timed.elapsed());
    assert_eq!(keys(&first), expected[..50]);
    let mut after = None;
    let mut page_100 = None;
    for n in 1..=100 {
        let timed = Instant::now();
        let rows = store.page_recordings(&page(after.clone(), 50)).await.unwrap();
        if n == 100 {
            eprintln!("page 100 (50, by cursor): {:?}", timed.elapsed());
            page_100 = Some(rows.clone());
        }
        after = rows.last().map(|r| (r.started_at, r.id.clone()));
    }
    assert_eq!(keys(&page_100.unwrap()), expected[99 * 50..100 * 50]);
    let (mut walked, mut after) = (Vec::new(), None);
    for _ in 0..(COUNT / 500 + 2) {
        let rows = store.page_recordings(&page(after.clone(), 500)).await.unwrap();
        if rows.is_empty() {
            break;
        }
        after = rows.last().map(|r| (r.started_at, r.id.clone()));
        walked.extend(keys(&rows));
    }
    assert_eq!(walked, expected, "pages of 500 cover every recording once, in order");

    // Filters: user, node and a time range together, against the same filter in memory.
    let (since, until) = (started_at(2_000), started_at(7_000));
    let filtered = |after: Option<(i64, String)>| RecordingQuery {
        user: Some(user(3)),
        node: Some(node(3)),
        since: Some(since),
        until: Some(until),
        complete: Some(true),
        after,
        limit: 50,
    };
    let mut want: Vec<(i64, String)> = (0..COUNT)
        .filter(|i| user(*i) == user(3) && node(*i) == node(3) && !i.is_multiple_of(10))
        .map(|i| (started_at(i), id(i)))
        .filter(|(at, _)| *at >= since && *at < until)
        .collect();
    want.sort_by(|a, b| b.cmp(a));
    assert!(want.len() > 50, "the filter spans pages: {}", want.len());
    let timed = Instant::now();
    let rows = store.page_recordings(&filtered(None)).await.unwrap();
    eprintln!("filtered page (user+node+range+complete, 50 of {}): {:?}", want.len(), timed.elapsed());
    let (mut got, mut rows) = (Vec::new(), rows);
    for _ in 0..100 {
        if rows.is_empty() {
            break;
        }
        got.extend(keys(&rows));
        let after = rows.last().map(|r| (r.started_at, r.id.clone()));
        rows = store.page_recordings(&filtered(after)).await.unwrap();
    }
    assert_eq!(got, want);

    // A rare word: the recordings that printed it, each hit at the right moment.
    let timed = Instant::now();
    let rare = store.search_text(&fts_query("ZANZIBAR firmware").unwrap(), None, 50).await.unwrap();
    eprintln!("search for a rare word ({} hits): {:?}", rare.len(), timed.elapsed());
    let rare_ids: BTreeSet<String> = rare.iter().map(|h| h.recording_id.clone()).collect();
    let want_ids: BTreeSet<String> = (0..COUNT).filter(|i| i.is_multiple_of(RARE_EVERY)).map(id).collect();
    assert_eq!(rare_ids, want_ids);
    assert_eq!(rare.len(), want_ids.len());
    assert!(rare.iter().all(|h| h.t == 1.5 && h.line == "unpacking zanzibar firmware"));

    // A common word: every recording once, over pages, newest index position first.
    let common = fts_query("compile").unwrap();
    let timed = Instant::now();
    let first = store.search_text(&common, None, 50).await.unwrap();
    eprintln!("search for a common word (first 50 of {COUNT}): {:?}", timed.elapsed());
    assert_eq!(first.len(), 50);
    let (mut seen, mut before) = (BTreeSet::new(), None);
    let timed = Instant::now();
    for _ in 0..(COUNT / 500 + 2) {
        let hits = store.search_text(&common, before, 500).await.unwrap();
        let Some(last) = hits.last() else { break };
        assert!(hits.windows(2).all(|w| w[0].hit > w[1].hit));
        before = Some(last.hit);
        for hit in hits {
            assert!(seen.insert(hit.recording_id.clone()), "{} twice", hit.recording_id);
            assert_eq!((hit.t, hit.line.as_str()), (0.8, "compile ok: 42 targets"));
        }
    }
    eprintln!("all {COUNT} hits of the common word in pages of 500: {:?}", timed.elapsed());
    assert_eq!(seen.len(), COUNT);
    assert!(store.search_text(&fts_query("nonexistentword").unwrap(), None, 50).await.unwrap().is_empty());

    // Keyframes: each recording's screen changed 5 s after it began.
    let frames = store.keyframe_times(&id(1234)).await.unwrap();
    assert_eq!(frames, [6.5]);
    let frame = store.keyframe_before(&id(1234), Some(10.0)).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&frame.screen).contains("step 1234 done"));
    assert!(store.keyframe_before(&id(1234), Some(6.0)).await.unwrap().is_none());
}
