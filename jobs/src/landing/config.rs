//! Settings of the nightly landing job (seeds/001, "Jobs nocturnos"): `LANDING_JOB_HOUR`,
//! `LANDING_JOB_MINUTE` (when the schedule runs it), `LANDING_TTL_DEFAULT_DAYS` and
//! `LANDING_TTL_LOCK_KEY`.

use engine::env::{parsed, var, ConfigError};

/// The seed's clamp of `LANDING_TTL_DEFAULT_DAYS` (and of an event's own TTL, by a CHECK).
pub const TTL_DAYS_MIN: i32 = 30;
pub const TTL_DAYS_MAX: i32 = 365;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LandingConfig {
    /// `LANDING_JOB_HOUR` (0–23, default 3) and `LANDING_JOB_MINUTE` (0–59, default 0): the
    /// daily time of the built-in schedule, in the schedule's time zone.
    pub hour: u8,
    pub minute: u8,
    /// `LANDING_TTL_DEFAULT_DAYS` (default 30), clamped to 30–365 as the seed says: events
    /// without a TTL of their own are archived this many days after their date, and expired
    /// after twice as many.
    pub default_ttl_days: i32,
    /// `LANDING_TTL_LOCK_KEY`: the Redis key held while the job runs, used as given; unset =
    /// `<REDIS_PREFIX>:lock:landing_ttl` (see [`LandingConfig::lock_key`]).
    pub lock_key: Option<String>,
}

impl Default for LandingConfig {
    fn default() -> Self {
        Self {
            hour: 3,
            minute: 0,
            default_ttl_days: TTL_DAYS_MIN,
            lock_key: None,
        }
    }
}

impl LandingConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = Self::default();
        let hour: u8 = parsed("LANDING_JOB_HOUR", d.hour)?;
        if hour > 23 {
            return Err(ConfigError {
                name: "LANDING_JOB_HOUR".into(),
                message: format!("must be between 0 and 23, got {hour}"),
            });
        }
        let minute: u8 = parsed("LANDING_JOB_MINUTE", d.minute)?;
        if minute > 59 {
            return Err(ConfigError {
                name: "LANDING_JOB_MINUTE".into(),
                message: format!("must be between 0 and 59, got {minute}"),
            });
        }
        let days: i64 = parsed("LANDING_TTL_DEFAULT_DAYS", i64::from(d.default_ttl_days))?;
        let lock_key = var("LANDING_TTL_LOCK_KEY").map(|k| k.trim().to_string());
        if lock_key
            .as_ref()
            .is_some_and(|k| k.contains(char::is_whitespace))
        {
            return Err(ConfigError {
                name: "LANDING_TTL_LOCK_KEY".into(),
                message: "must not contain whitespace".into(),
            });
        }
        Ok(Self {
            hour,
            minute,
            default_ttl_days: clamp_ttl_days(days),
            lock_key,
        })
    }

    /// The lock's key: `LANDING_TTL_LOCK_KEY` as given, else under the deployment's prefix
    /// (outside `landing:*`, so the cache invalidation never deletes it).
    pub fn lock_key(&self, prefix: &str) -> String {
        self.lock_key
            .clone()
            .unwrap_or_else(|| format!("{prefix}:lock:landing_ttl"))
    }
}

/// The seed's clamp: a TTL below 30 days becomes 30, above 365 becomes 365.
pub fn clamp_ttl_days(days: i64) -> i32 {
    days.clamp(i64::from(TTL_DAYS_MIN), i64::from(TTL_DAYS_MAX)) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_is_clamped_to_the_seeds_range() {
        assert_eq!(clamp_ttl_days(-5), 30);
        assert_eq!(clamp_ttl_days(29), 30);
        assert_eq!(clamp_ttl_days(90), 90);
        assert_eq!(clamp_ttl_days(400), 365);
    }

    #[test]
    fn the_default_lock_key_lives_under_the_prefix_outside_the_caches() {
        let c = LandingConfig::default();
        assert_eq!(c.lock_key("taquilla"), "taquilla:lock:landing_ttl");
        let own = LandingConfig {
            lock_key: Some("locks:landing".into()),
            ..c
        };
        assert_eq!(own.lock_key("taquilla"), "locks:landing");
    }
}
