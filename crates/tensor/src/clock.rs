//! A training clock that can be paused, so evaluation time never counts as
//! training time.
use std::time::{Duration, Instant};

/// Accumulates running time only; starts paused.
#[derive(Debug, Clone, Default)]
pub struct TrainClock {
    accumulated: Duration,
    running_since: Option<Instant>,
}

impl TrainClock {
    /// A paused clock at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// A paused clock already showing `seconds` (for a resumed run).
    pub fn with_offset(seconds: f64) -> Self {
        Self { accumulated: Duration::from_secs_f64(seconds.max(0.0)), running_since: None }
    }

    /// Starts or resumes counting; no-op when running.
    pub fn resume(&mut self) {
        if self.running_since.is_none() {
            self.running_since = Some(Instant::now());
        }
    }

    /// Stops counting; no-op when paused.
    pub fn pause(&mut self) {
        if let Some(t) = self.running_since.take() {
            self.accumulated += t.elapsed();
        }
    }

    /// Whether the clock is counting.
    pub fn is_running(&self) -> bool {
        self.running_since.is_some()
    }

    /// Seconds counted so far.
    pub fn seconds(&self) -> f64 {
        (self.accumulated + self.running_since.map_or(Duration::ZERO, |t| t.elapsed())).as_secs_f64()
    }

    /// Runs `f` with the clock paused, restoring its previous state after.
    pub fn paused<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let was_running = self.is_running();
        self.pause();
        let r = f();
        if was_running {
            self.resume();
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paused_time_is_not_counted() {
        let mut c = TrainClock::new();
        c.resume();
        std::thread::sleep(Duration::from_millis(20));
        let before = c.seconds();
        c.paused(|| std::thread::sleep(Duration::from_millis(60)));
        assert!(c.is_running());
        let after = c.seconds();
        assert!(before >= 0.02);
        assert!(after - before < 0.05, "paused interval leaked into the clock: {before} -> {after}");
        c.pause();
        let frozen = c.seconds();
        std::thread::sleep(Duration::from_millis(10));
        assert_eq!(frozen, c.seconds());
    }

    #[test]
    fn offset_starts_from_saved_seconds() {
        let c = TrainClock::with_offset(12.5);
        assert_eq!(c.seconds(), 12.5);
        assert!(!c.is_running());
    }
}
