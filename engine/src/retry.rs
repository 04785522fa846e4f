//! Retry delays: exponential backoff with full jitter, per kind.

use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Ceiling of the first retry's delay.
    pub base: Duration,
    /// Ceiling of any delay.
    pub max: Duration,
}

impl Backoff {
    pub const fn new(base: Duration, max: Duration) -> Self {
        Self { base, max }
    }

    /// The ceiling before retrying after `attempt` (1-based) failed: `base × 2^(attempt-1)`,
    /// capped at `max`.
    pub fn ceiling(&self, attempt: i32) -> Duration {
        let exp = attempt.saturating_sub(1).clamp(0, 30) as u32;
        let factor = 1u64 << exp;
        let ms = (self.base.as_millis() as u64).saturating_mul(factor);
        Duration::from_millis(ms).min(self.max)
    }

    /// "Full jitter": a uniform delay in `[0, ceiling]`, which spreads retries of a burst of
    /// failures better than a fixed or equal-jitter schedule.
    pub fn delay(&self, attempt: i32) -> Duration {
        let ceiling = self.ceiling(attempt).as_millis() as u64;
        if ceiling == 0 {
            return Duration::ZERO;
        }
        Duration::from_millis(rand::rng().random_range(0..=ceiling))
    }
}

/// Kinds' backoffs as parallel arrays (kind, first ceiling and cap in ms), bound into a
/// statement that delays the retries of many tasks at once with the same full jitter as
/// [`Backoff::delay`].
#[derive(Debug, Clone, Default)]
pub struct BackoffTable {
    pub kinds: Vec<String>,
    pub base_ms: Vec<i64>,
    pub max_ms: Vec<i64>,
}

impl BackoffTable {
    pub fn of<'a>(backoffs: impl IntoIterator<Item = (&'a str, Backoff)>) -> Self {
        let mut table = Self::default();
        for (kind, b) in backoffs {
            table.kinds.push(kind.to_owned());
            table.base_ms.push(millis(b.base));
            table.max_ms.push(millis(b.max));
        }
        table
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_until_the_cap() {
        let b = Backoff::new(Duration::from_secs(2), Duration::from_secs(600));
        assert_eq!(b.ceiling(1), Duration::from_secs(2));
        assert_eq!(b.ceiling(2), Duration::from_secs(4));
        assert_eq!(b.ceiling(5), Duration::from_secs(32));
        assert_eq!(b.ceiling(12), Duration::from_secs(600));
        assert_eq!(b.ceiling(1000), Duration::from_secs(600));
    }

    #[test]
    fn delay_stays_within_the_ceiling_and_varies() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        let samples: Vec<_> = (0..200).map(|_| b.delay(4)).collect();
        assert!(samples.iter().all(|d| *d <= Duration::from_millis(800)));
        let distinct: std::collections::HashSet<_> = samples.iter().collect();
        assert!(distinct.len() > 20, "full jitter must spread delays");
    }
}
