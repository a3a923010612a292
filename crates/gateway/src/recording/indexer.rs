//! The background indexer: brings every recording's index (keyframes, text) up to date,
//! finished recordings once and running ones as they grow.
//!
//! Each pass walks the recordings not yet fully indexed, oldest first, in pages; a
//! page's file reading and terminal emulation run on a thread at the lowest CPU priority
//! (`crate::background`: relays go first), then the page's results are stored in one
//! transaction together with each recording's new offset.
//! A crash loses at most the uncommitted page, which the next start redoes from the
//! stored offsets; listing and playing a recording never depend on its index.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::index::{CastIndex, read_header, read_lines};
use crate::gateway::Gateway;
use crate::store::{IndexBatch, IndexState, Keyframe, RecordingRow, Store};

/// How often running recordings are looked at: a line they print is searchable within
/// about this plus the recorder's write interval.
pub const EVERY: Duration = Duration::from_secs(5);
/// Recordings per page (one blocking job, one transaction).
const PAGE: i64 = 32;
/// Bytes of `.cast` read per recording per step.
const STEP_BYTES: u64 = 1 << 20;
/// Bytes of `.cast` read per page; the rest waits for the next page or pass.
const PAGE_BYTES: u64 = 8 << 20;
/// Every this many passes the walk starts from the oldest recording again (clock skew).
const RESCAN_EVERY: u32 = 120;

/// Indexes until shutdown.
pub async fn run(gateway: Arc<Gateway>) {
    let mut shutdown = gateway.shutdown.subscribe();
    let mut indexer = Indexer::default();
    loop {
        let more = match indexer.pass(&gateway.store).await {
            Ok(more) => more,
            Err(err) => {
                tracing::warn!("recording indexer: {err:#}");
                false
            }
        };
        let pause = if more { Duration::ZERO } else { EVERY };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.wait() => return,
        }
    }
}

/// Where the walk over unfinished recordings starts.
#[derive(Debug, Default)]
pub struct Indexer {
    /// Every recording that started before this second is fully indexed.
    low: Option<i64>,
    passes: u32,
}

/// What a pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassStats {
    /// Recordings looked at.
    pub seen: usize,
    /// Recordings whose index grew.
    pub stepped: usize,
    /// Recordings finished.
    pub finished: usize,
}

struct Job {
    row: RecordingRow,
    state: Option<IndexState>,
    keyframe: Option<Keyframe>,
}

impl Indexer {
    /// One pass; true if some recording has more to read at once.
    pub async fn pass(&mut self, store: &Store) -> anyhow::Result<bool> {
        Ok(self.pass_with_stats(store).await?.0)
    }

    /// [`Indexer::pass`], counting what it did.
    pub async fn pass_with_stats(&mut self, store: &Store) -> anyhow::Result<(bool, PassStats)> {
        if self.passes.is_multiple_of(RESCAN_EVERY) {
            self.low = None;
        }
        self.passes = self.passes.wrapping_add(1);
        let mut from = self.low.map(|at| (at, String::new()));
        let mut inclusive = true;
        let (mut more, mut stats, mut low, mut last_seen) = (false, PassStats::default(), None, None);
        loop {
            let page = store.recordings_to_index(from.as_ref(), inclusive, PAGE).await?;
            let Some((last, _)) = page.last() else { break };
            let next = (last.started_at, last.id.clone());
            last_seen = Some(last.started_at);
            let full = page.len() as i64 == PAGE;
            let mut jobs = Vec::with_capacity(page.len());
            for (row, state) in page {
                let keyframe = match &state {
                    Some(_) => store.keyframe_before(&row.id, None).await?,
                    None => None,
                };
                jobs.push(Job { row, state, keyframe });
            }
            stats.seen += jobs.len();
            // Reading and emulating is the heavy part: it runs at the lowest priority, so that
            // relays sharing the cores go first (see `background`).
            let steps = crate::background::run("portcullis-index", move || run_page(jobs)).await?;
            let mut batches = Vec::new();
            for (started_at, outcome) in steps {
                match outcome {
                    Some((batch, has_more)) => {
                        more |= has_more;
                        stats.stepped += 1;
                        if batch.state.done {
                            stats.finished += 1;
                        } else {
                            low.get_or_insert(started_at);
                        }
                        batches.push(batch);
                    }
                    None => {
                        low.get_or_insert(started_at);
                    }
                }
            }
            store.store_index_batches(&batches).await?;
            if !full {
                break;
            }
            from = Some(next);
            inclusive = false;
        }
        // Nothing left unfinished: the next pass starts at the newest start seen.
        self.low = low.or(last_seen).or(self.low);
        Ok((more, stats))
    }
}

/// Steps every job of a page, within the page's byte budget; returns each job's start
/// time and its step (`None`: nothing new, or not reached).
fn run_page(jobs: Vec<Job>) -> Vec<(i64, Option<(IndexBatch, bool)>)> {
    let mut left = PAGE_BYTES;
    let mut out = Vec::with_capacity(jobs.len());
    for job in jobs {
        let started_at = job.row.started_at;
        if left == 0 {
            out.push((started_at, None));
            continue;
        }
        let before = job.state.as_ref().map_or(0, |s| s.offset);
        let id = job.row.id.clone();
        let outcome = match step(job, STEP_BYTES.min(left)) {
            Ok(outcome) => outcome,
            Err(err) => {
                tracing::debug!(recording = %id, "cannot index recording yet: {err:#}");
                None
            }
        };
        if let Some((batch, _)) = &outcome {
            left = left.saturating_sub(batch.state.offset.saturating_sub(before));
        }
        out.push((started_at, outcome));
    }
    out
}

/// Indexes up to `budget` more bytes of one recording.
fn step(job: Job, budget: u64) -> anyhow::Result<Option<(IndexBatch, bool)>> {
    let Job { row, state, keyframe } = job;
    let path = Path::new(&row.path);
    let ended = row.ended_at.is_some();
    let size = match std::fs::metadata(path) {
        Ok(meta) => meta.len(),
        Err(err) if ended => {
            tracing::warn!(recording = %row.id, "recording file unreadable ({err}); not indexed");
            return Ok(Some((unreadable(&row.id), false)));
        }
        Err(err) => return Err(err.into()),
    };
    if state.as_ref().is_some_and(|s| s.offset >= size) && !ended {
        return Ok(None);
    }
    let (header, header_len) = match read_header(path) {
        Ok(header) => header,
        Err(err) if ended => {
            tracing::warn!(recording = %row.id, "recording has no readable header ({err:#}); not indexed");
            return Ok(Some((unreadable(&row.id), false)));
        }
        Err(err) => return Err(err),
    };
    let run = |emulate: bool| -> anyhow::Result<Option<(IndexBatch, bool)>> {
        let index = match state.clone() {
            None => CastIndex::start(&header, header_len),
            Some(state) => {
                let indexed = state.offset;
                let from = keyframe.as_ref().map_or(header_len, |k| k.offset);
                let mut index = CastIndex::resume(&header, keyframe.as_ref(), state);
                if emulate {
                    let (lines, _) = read_lines(path, from, u64::MAX, |line| line.end > indexed)?;
                    lines.iter().for_each(|line| index.replay(line));
                }
                index
            }
        };
        let mut index = if emulate { index } else { index.without_emulator() };
        let (lines, at_end) = read_lines(path, index.offset(), budget, |_| false)?;
        lines.iter().for_each(|line| index.feed(line));
        if at_end && ended {
            index.finish();
        }
        Ok(Some((index.take_batch(&row.id), !at_end)))
    };
    // The emulator is third-party code fed with what vendors print: should it panic,
    // this step indexes the text without keyframes rather than stalling every later pass.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(true))) {
        Ok(result) => result,
        Err(_) => {
            tracing::warn!(recording = %row.id, "terminal emulator failed; indexing this part without keyframes");
            run(false)
        }
    }
}

/// A finished recording with nothing to index.
fn unreadable(id: &str) -> IndexBatch {
    let state = IndexState { offset: 0, text_bytes: 0, pending: String::new(), pending_t: 0.0, done: true };
    IndexBatch { recording_id: id.to_owned(), lines: Vec::new(), keyframes: Vec::new(), state }
}
