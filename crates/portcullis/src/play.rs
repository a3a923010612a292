//! Replays an asciicast v2 stream in a terminal, keeping its timing.

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use anyhow::Context;
use portcullis_proto::asciicast::{EventKind, parse_event};

/// Longest single pause, so an idle hour does not stall a replay.
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// Writes each output event when its time comes, `speed` times faster.
pub fn play(input: impl BufRead, speed: f64, out: &mut impl Write) -> anyhow::Result<()> {
    let mut lines = input.lines();
    lines.next().context("empty recording")??;
    let start = Instant::now();
    let mut skipped = Duration::ZERO;
    let mut last = 0.0f64;
    for line in lines {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let Ok(event) = parse_event(&line) else { break };
        if event.kind != EventKind::Output {
            continue;
        }
        let gap = Duration::from_secs_f64(((event.time - last) / speed).max(0.0));
        if gap > MAX_PAUSE {
            skipped += gap - MAX_PAUSE;
        }
        last = event.time;
        let due = Duration::from_secs_f64(event.time / speed).saturating_sub(skipped);
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        out.write_all(event.data.as_bytes())?;
        out.flush()?;
    }
    Ok(())
}
