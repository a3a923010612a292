//! Reconnect delays: exponential from one second, capped, with jitter so a fleet of
//! agents cut off together does not return together.

use std::time::Duration;

/// The first delay before jitter.
pub const INITIAL: Duration = Duration::from_secs(1);
/// A connection that lasted this long resets the back-off.
pub const STABLE_AFTER: Duration = Duration::from_secs(30);

/// The delay before reconnect number `attempt` (0-based): `min(INITIAL * 2^attempt, max)`
/// scaled by `0.5 + jitter / 2`, where `jitter` is drawn from `[0, 1)`.
pub fn delay(attempt: u32, max: Duration, jitter: f64) -> Duration {
    let nominal = INITIAL.checked_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX)).unwrap_or(max).min(max);
    nominal.mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0)
}

/// The state of one reconnect loop.
#[derive(Debug, Clone)]
pub struct Backoff {
    attempt: u32,
    max: Duration,
}

impl Backoff {
    /// A fresh schedule capped at `max`.
    pub fn new(max: Duration) -> Backoff {
        Backoff { attempt: 0, max: max.max(INITIAL) }
    }

    /// The next delay, with fresh jitter.
    pub fn next_delay(&mut self) -> Duration {
        let delay = delay(self.attempt, self.max, rand::random::<f64>());
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    /// Starts over after a connection that held.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Duration = Duration::from_secs(60);

    #[test]
    fn delays_double_from_one_second_up_to_the_cap() {
        let nominal: Vec<u64> = (0..9).map(|a| delay(a, MAX, 1.0).as_secs()).collect();
        assert_eq!(nominal, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(delay(u32::MAX, MAX, 1.0), MAX);
        assert_eq!(delay(40, Duration::from_secs(5), 1.0), Duration::from_secs(5));
    }

    #[test]
    fn jitter_keeps_each_delay_between_half_and_all_of_nominal() {
        assert_eq!(delay(0, MAX, 0.0), Duration::from_millis(500));
        assert_eq!(delay(3, MAX, 0.5), Duration::from_secs(6));
        assert_eq!(delay(10, MAX, -3.0), Duration::from_secs(30));
        assert_eq!(delay(10, MAX, 7.0), MAX);
        let mut backoff = Backoff::new(MAX);
        for attempt in 0..12 {
            let nominal = delay(attempt, MAX, 1.0);
            let drawn = backoff.next_delay();
            assert!(drawn >= nominal / 2 && drawn <= nominal, "attempt {attempt}: {drawn:?} vs {nominal:?}");
        }
        backoff.reset();
        assert!(backoff.next_delay() <= INITIAL);
    }

    #[test]
    fn a_cap_below_one_second_is_raised_to_it() {
        let mut backoff = Backoff::new(Duration::from_millis(10));
        assert!(backoff.next_delay() >= Duration::from_millis(500));
    }
}
