//! Reading settings from the environment: a value that does not parse is an error naming
//! the variable, never a silent default. And the engine's own settings.

use std::{env, str::FromStr, time::Duration};

use thiserror::Error;

#[derive(Debug, Error)]
#[error("environment variable {name}: {message}")]
pub struct ConfigError {
    pub name: String,
    pub message: String,
}

/// Reads `name`, returning `None` when unset or blank.
pub fn var(name: &str) -> Option<String> {
    env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Reads and parses `name`, falling back to `default` when unset; a value that does not
/// parse is an error naming the variable, never a silent default.
pub fn parsed<T: FromStr>(name: &str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match var(name) {
        None => Ok(default),
        Some(raw) => raw.trim().parse().map_err(|e: T::Err| ConfigError {
            name: name.to_string(),
            message: format!("cannot parse {raw:?}: {e}"),
        }),
    }
}

/// Like [`parsed`] for a duration in seconds, rejecting zero.
pub fn seconds(name: &str, default: u64) -> Result<Duration, ConfigError> {
    let v: u64 = parsed(name, default)?;
    if v == 0 {
        return Err(ConfigError {
            name: name.into(),
            message: "must be at least 1".into(),
        });
    }
    Ok(Duration::from_secs(v))
}

/// What the engine needs to know of the deployment; the product reads it with the rest of
/// its configuration and hands it over.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Namespace of every Redis key we (and apalis, through the queue names) write.
    pub redis_prefix: String,
    /// Most transport messages waiting in Redis per queue (DESIGN §4).
    pub queue_max_ready: usize,
    /// A pushed message not claimed after this long is pushed again (covers Redis data loss).
    pub queue_repush_after: Duration,
    /// How long a claim holds a task before another worker may take it over.
    pub task_lease: Duration,
    /// Finished tasks (and progress hashes) live this long.
    pub task_ttl: Duration,
}
