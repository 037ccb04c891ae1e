//! The one retry delay policy: a first delay doubled per attempt up to a cap, less a
//! random share of up to 20 %, so a fleet that lost its collector at the same instant
//! does not come back at the same instant, and no wait is longer than the cap.

use std::time::Duration;

/// Delays between attempts at something that keeps failing.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub const fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            first,
            max,
            attempt: 0,
        }
    }

    /// The delay before the next attempt (and counts it).
    pub fn next_delay(&mut self) -> Duration {
        let delay = delay(self.first, self.max, self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    /// After a success: the next failure waits the first delay again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Failures since the last success.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

/// The delay before retry number `attempt` (0-based): `first · 2^attempt`, at most
/// `max`, times a jitter between 0.8 and 1.
pub fn delay(first: Duration, max: Duration, attempt: u32) -> Duration {
    let base = first.saturating_mul(1u32 << attempt.min(20)).min(max);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    base.mul_f64(0.8 + f64::from(nanos % 201) / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_within_the_jitter() {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let delays: Vec<Duration> = (0..12).map(|_| backoff.next_delay()).collect();
        assert!(delays[0] >= Duration::from_millis(400) && delays[0] <= Duration::from_millis(600));
        assert!(
            delays[3] >= Duration::from_millis(3200) && delays[3] <= Duration::from_millis(4800)
        );
        for d in &delays[7..] {
            assert!(
                *d >= Duration::from_secs(24) && *d <= Duration::from_secs(36),
                "{d:?}"
            );
        }
        assert_eq!(backoff.attempts(), 12);
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(500));
    }
}
