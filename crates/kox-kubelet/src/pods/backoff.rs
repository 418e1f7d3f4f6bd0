//! The kubelet's back-off for restarting crashed containers and retrying image pulls: 10 s,
//! doubling up to 5 minutes, forgotten after a container ran 10 minutes without trouble.

use std::collections::HashMap;
use std::time::{Duration, Instant};

pub const INITIAL: Duration = Duration::from_secs(10);
pub const MAX: Duration = Duration::from_secs(300);
/// A container that ran this long resets its back-off.
pub const RESET_AFTER: Duration = Duration::from_secs(600);

#[derive(Debug, Default)]
pub struct Backoff {
    /// Per key: the current delay and when the last failure was seen.
    entries: HashMap<String, (Duration, Instant)>,
}

impl Backoff {
    /// Whether `key` is still backing off (after a failure seen at `failed_at`); records the
    /// failure the first time it is seen.
    pub fn waiting(&mut self, key: &str, failed_at: Instant) -> Option<Duration> {
        let (delay, at) = self.entries.get(key).copied()?;
        let until = at.max(failed_at) + delay;
        let now = Instant::now();
        (now < until).then(|| until - now)
    }

    /// Records a restart of `key` now: the next one waits twice as long.
    pub fn next(&mut self, key: &str) {
        let now = Instant::now();
        let delay = match self.entries.get(key) {
            Some((d, at)) if now.duration_since(*at) < RESET_AFTER + *d => (*d * 2).min(MAX),
            _ => INITIAL,
        };
        self.entries.insert(key.to_string(), (delay, now));
    }

    /// The delay `key` is at (for the "back-off 20s restarting …" message).
    pub fn delay(&self, key: &str) -> Duration {
        self.entries.get(key).map_or(INITIAL, |(d, _)| *d)
    }

    /// Forgets `key` (it ran long enough).
    pub fn reset(&mut self, key: &str) {
        self.entries.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_five_minutes() {
        let mut b = Backoff::default();
        let mut seen = Vec::new();
        for _ in 0..8 {
            b.next("c");
            seen.push(b.delay("c").as_secs());
        }
        assert_eq!(seen, [10, 20, 40, 80, 160, 300, 300, 300]);
        assert!(b.waiting("c", Instant::now()).is_some());
        b.reset("c");
        assert!(b.waiting("c", Instant::now()).is_none());
    }
}
