//! Logging a condition that repeats (a full buffer, refused connections) once, then at
//! most once a period, so a flood of the same failure cannot fill the journal. The
//! caller says where the rest are counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Says whether a repeated condition is due to be logged. Shared by reference between
/// tasks; costs one atomic load when not due.
#[derive(Debug)]
pub struct LogLimiter {
    period: Duration,
    started: Instant,
    /// When it was last due, in ms since `started` plus one (0: never).
    last: AtomicU64,
}

impl LogLimiter {
    pub fn new(period: Duration) -> LogLimiter {
        LogLimiter {
            period,
            started: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    /// Once a minute.
    pub fn every_minute() -> LogLimiter {
        LogLimiter::new(Duration::from_secs(60))
    }

    /// True the first time, then once `period` has passed since it was last true.
    pub fn due(&self) -> bool {
        let now = self.started.elapsed().as_millis() as u64 + 1;
        let last = self.last.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < self.period.as_millis() as u64 {
            return false;
        }
        self.last
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_once_per_period() {
        let limiter = LogLimiter::new(Duration::from_millis(200));
        assert!(limiter.due());
        assert!(!limiter.due());
        std::thread::sleep(Duration::from_millis(250));
        assert!(limiter.due());
        assert!(!limiter.due());
    }
}
