//! How far a running recording's file is complete, told by its writer to whoever follows
//! the recording (the player asks for new events from there on).
//!
//! The writer stamps events in order with its own clock. It publishes, after each write
//! out, the time before which every event is in the file, and whether nothing seen is
//! left unwritten: then the file is complete up to the present, even through a silence
//! with no write at all. Before stamping anything it clears that flag, so a reader that
//! took the present first and then saw the flag set knows every later event is stamped
//! after its present.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How far behind the present a caught-up mark reports.
const CLOCK_MARGIN: Duration = Duration::from_millis(1);

/// Shared by a [`super::Recording`] and the readers that follow it.
#[derive(Debug)]
pub struct WrittenMark {
    /// The writer's clock starts here.
    started: Instant,
    /// Every event stamped before this many microseconds is in the file.
    through_us: AtomicU64,
    /// Nothing seen is left unwritten: the file is complete up to the present.
    caught_up: AtomicBool,
}

impl WrittenMark {
    /// A mark for a writer whose clock starts at `started`, with nothing written yet.
    pub fn new(started: Instant) -> WrittenMark {
        WrittenMark { started, through_us: AtomicU64::new(0), caught_up: AtomicBool::new(false) }
    }

    /// Called before the writer stamps anything new. Caught up until now, the file is
    /// complete up to now, so the mark moves there and never goes back for readers.
    pub(super) fn seeing(&self) {
        // Only the writer sets the flag, so reading it first needs no atomic swap.
        if self.caught_up.load(Ordering::Relaxed) {
            self.advance(Instant::now().saturating_duration_since(self.started));
            self.caught_up.store(false, Ordering::SeqCst);
        }
    }

    fn advance(&self, through: Duration) {
        let us = u64::try_from(through.as_micros()).unwrap_or(u64::MAX);
        self.through_us.fetch_max(us, Ordering::Release);
    }

    /// Called after the writer wrote out: every event before `through` is in the file, and
    /// with `caught_up` nothing seen is left unwritten.
    pub(super) fn written(&self, through: Duration, caught_up: bool) {
        self.advance(through);
        if caught_up {
            self.caught_up.store(true, Ordering::SeqCst);
        }
    }

    /// How far the file is complete now, in the recording's clock: every event stamped
    /// before this was written before this returned.
    pub fn through(&self) -> Duration {
        // The present first: if the writer is caught up after it, whatever it stamps next
        // is stamped later.
        let now = Instant::now();
        if self.caught_up.load(Ordering::SeqCst) {
            // Less a margin: nothing orders the clock's read before the flag's load, and
            // the CPU may serve the load first.
            let us = now.saturating_duration_since(self.started + CLOCK_MARGIN).as_micros();
            return Duration::from_micros(u64::try_from(us).unwrap_or(u64::MAX));
        }
        Duration::from_micros(self.through_us.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caught_up_follows_the_present_and_seeing_holds_it_at_the_last_write() {
        let started = Instant::now() - Duration::from_secs(10);
        let mark = WrittenMark::new(started);
        assert_eq!(mark.through(), Duration::ZERO, "nothing written yet");
        mark.seeing();
        mark.written(Duration::from_secs(4), false);
        assert_eq!(mark.through(), Duration::from_secs(4), "something seen is still pending");
        mark.written(Duration::from_secs(3), false);
        assert_eq!(mark.through(), Duration::from_secs(4), "never goes back");
        mark.written(Duration::from_secs(5), true);
        let present = mark.through();
        assert!(present >= Duration::from_secs(10) - CLOCK_MARGIN, "caught up: the present, {present:?}");
        std::thread::sleep(Duration::from_millis(20));
        assert!(mark.through() >= present + Duration::from_millis(20), "grows through a silence");
        let before = mark.through();
        mark.seeing();
        let held = mark.through();
        assert!(held >= before, "new output holds the mark where it was caught up: {held:?} ≥ {before:?}");
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(mark.through(), held, "and it stays there until written out");
    }
}
