//! The crate's one backoff policy. Every loop that waits and tries again — the start-up wait
//! for the database, acquisition retries, transaction re-runs, SQLite's switch to WAL, a
//! dropped pool waiting for its in-flight connects, polls for the migration lock, re-tries of
//! a migration step after a lock timeout — takes its delays from [`Backoff`], so there is one
//! jitter rule to reason about and to tune.
//!
//! The policy: exponential growth from a base delay (factor 2, the `retry` crate's
//! [`Exponential`]), capped, with "equal jitter" (each delay uniform in `[d/2, d]`, from the
//! `retry` crate's [`jitter`]): instances that failed together spread out, and no delay
//! collapses to a busy spin. Bounded by a deadline, each delay is clipped to what is left and
//! the iterator ends when nothing is left, so a loop driven by it cannot overrun its deadline
//! by more than one attempt.
//!
//! Reference: "Exponential Backoff And Jitter", AWS Architecture Blog (2015), which compares
//! full, equal and decorrelated jitter.

use std::time::{Duration, Instant};

use retry::delay::{Exponential, jitter};

/// An iterator of sleep durations; see the module documentation.
#[derive(Debug)]
pub(crate) struct Backoff {
    steps: Exponential,
    cap: Duration,
    deadline: Option<Instant>,
}

impl Backoff {
    /// Delays growing from `base` (at least 1 ms) by a factor of 2 up to `cap`, jittered.
    pub(crate) fn new(base: Duration, cap: Duration) -> Self {
        let base_ms = u64::try_from(base.as_millis()).unwrap_or(u64::MAX).max(1);
        Self {
            steps: Exponential::from_millis(base_ms),
            cap: cap.max(Duration::from_millis(1)),
            deadline: None,
        }
    }

    /// Ends the iterator at `deadline` and clips each delay to the time left before it.
    pub(crate) fn until(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }
}

impl Iterator for Backoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let ceiling = self.steps.next()?.min(self.cap);
        let half = ceiling / 2;
        let delay = half + jitter(ceiling - half);
        match self.deadline {
            None => Some(delay),
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                (!left.is_zero()).then(|| delay.min(left))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_within_equal_jitter_and_stop_at_the_cap() {
        let delays: Vec<Duration> =
            Backoff::new(Duration::from_millis(10), Duration::from_millis(100))
                .take(8)
                .collect();
        let ceilings = [10u64, 20, 40, 80, 100, 100, 100, 100];
        for (d, c) in delays.iter().zip(ceilings) {
            let c = Duration::from_millis(c);
            assert!(*d >= c / 2 && *d <= c, "{d:?} outside [{:?}, {c:?}]", c / 2);
        }
    }

    #[test]
    fn a_deadline_clips_the_delays_and_ends_the_iterator() {
        let deadline = Instant::now() + Duration::from_millis(30);
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(10)).until(deadline);
        let first = b.next().expect("time is left");
        assert!(first <= Duration::from_millis(30), "{first:?}");
        std::thread::sleep(Duration::from_millis(35));
        assert_eq!(b.next(), None);
    }

    #[test]
    fn a_zero_base_never_spins() {
        let d = Backoff::new(Duration::ZERO, Duration::ZERO).next().unwrap();
        assert!(d <= Duration::from_millis(1));
        let mut b = Backoff::new(Duration::ZERO, Duration::from_secs(1));
        let later = b.nth(5).unwrap();
        assert!(later >= Duration::from_millis(16), "{later:?}");
    }
}
