//! A token bucket, as upstream's `flowcontrol` rate limiters (over `golang.org/x/time/rate`):
//! `qps` tokens a second accrue up to `burst`, each grant takes one. Callers pass the time in,
//! so the one clock is theirs and tests need not sleep.

use std::time::{Duration, Instant};

/// A token bucket; it starts full.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    qps: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens refilled at `qps` a second.
    pub fn new(qps: f64, burst: u32, now: Instant) -> Self {
        TokenBucket {
            qps,
            burst: f64::from(burst),
            tokens: f64::from(burst),
            at: now,
        }
    }

    /// Changes the refill rate from `now` on (what accrued so far is kept).
    pub fn set_qps(&mut self, qps: f64, now: Instant) {
        self.refill(now);
        self.qps = qps;
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.qps).min(self.burst);
        self.at = self.at.max(now);
    }

    /// Takes a token if one is there (upstream's `TryAccept`).
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Takes a token, going into debt when none is there, and says how long until it is due
    /// (upstream's `Reserve().Delay()`): grants are spaced `1/qps` apart once the burst is
    /// spent. A bucket that never refills (`qps` 0) owes forever: `Duration::MAX`.
    pub fn reserve(&mut self, now: Instant) -> Duration {
        self.refill(now);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else if self.qps > 0.0 {
            Duration::from_secs_f64(-self.tokens / self.qps)
        } else {
            Duration::MAX
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_granted_then_the_rate_applies() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1.0, 3, t0);
        assert!((0..3).all(|_| b.try_take(t0)));
        assert!(!b.try_take(t0));
        assert!(!b.try_take(t0 + Duration::from_millis(900)));
        assert!(b.try_take(t0 + Duration::from_millis(1000)));
        // Refill stops at the burst.
        let later = t0 + Duration::from_secs(3600);
        assert_eq!((0..10).filter(|_| b.try_take(later)).count(), 3);
    }

    #[test]
    fn reservations_past_the_burst_are_spaced_by_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10.0, 2, t0);
        assert_eq!(b.reserve(t0), Duration::ZERO);
        assert_eq!(b.reserve(t0), Duration::ZERO);
        let d3 = b.reserve(t0);
        let d4 = b.reserve(t0);
        assert!((d3.as_secs_f64() - 0.1).abs() < 1e-9, "{d3:?}");
        assert!((d4.as_secs_f64() - 0.2).abs() < 1e-9, "{d4:?}");
    }

    #[test]
    fn a_zero_rate_grants_only_the_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(0.0, 1, t0);
        assert!(b.try_take(t0));
        assert!(!b.try_take(t0 + Duration::from_secs(3600)));
        let mut off = TokenBucket::new(0.1, 0, t0);
        off.set_qps(0.0, t0);
        assert!(
            !off.try_take(t0 + Duration::from_secs(60)),
            "nothing accrues"
        );
        assert_eq!(off.reserve(t0), Duration::MAX);
    }
}
