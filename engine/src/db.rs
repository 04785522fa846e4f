//! Postgres pools (the product owns the migrations).
//!
//! Every pool carries a `statement_timeout`, so a runaway query ends with an error instead
//! of holding a connection (and the request or task behind it) forever: the api's is short
//! (`DATABASE_STATEMENT_TIMEOUT_MS`, default 10 s), the workers' longer
//! (`WORKER_STATEMENT_TIMEOUT_MS`, default 10 min: a KPI refresh may take minutes), and an
//! export's own connection sets its own (it streams for as long as the export runs).

use std::{str::FromStr, time::Duration};

use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    PgPool,
};

/// Default `statement_timeout` of the api's pool.
pub const API_STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `statement_timeout` of a worker's pool.
pub const WORKER_STATEMENT_TIMEOUT: Duration = Duration::from_secs(600);

/// A pool whose every statement is cancelled by Postgres after `statement_timeout`.
pub async fn connect(
    url: &str,
    max_connections: u32,
    statement_timeout: Duration,
) -> Result<PgPool, sqlx::Error> {
    let options = with_statement_timeout(PgConnectOptions::from_str(url)?, statement_timeout);
    connect_with(options, max_connections).await
}

/// `options` with a `statement_timeout` set at connection start-up (whole milliseconds, at
/// least 1: 0 would mean "no limit").
pub fn with_statement_timeout(options: PgConnectOptions, timeout: Duration) -> PgConnectOptions {
    let ms = timeout.as_millis().clamp(1, i32::MAX as u128);
    options.options([("statement_timeout", ms.to_string())])
}

/// A statement timeout from the environment variable `name` (milliseconds), or `default`.
pub fn statement_timeout_from_env(
    name: &str,
    default: Duration,
) -> Result<Duration, crate::env::ConfigError> {
    let ms: u64 = crate::env::parsed(name, default.as_millis() as u64)?;
    if !(100..=86_400_000).contains(&ms) {
        return Err(crate::env::ConfigError {
            name: name.into(),
            message: "must be between 100 and 86400000 milliseconds".into(),
        });
    }
    Ok(Duration::from_millis(ms))
}

pub async fn connect_with(
    options: PgConnectOptions,
    max_connections: u32,
) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
}

/// Connections of the bookkeeping pool (see [`bookkeeping_pool`]): the runner keeps one
/// claim statement in flight, the relay one transaction, lease renewal one statement.
const BOOKKEEPING_CONNECTIONS: u32 = 4;

/// A pool beside `pool` (same server, same settings) whose commits do not wait for the WAL
/// flush (`synchronous_commit = off`), for writes whose loss in a Postgres crash only
/// repeats work the engine already knows how to repeat: a claim (the task is claimed again:
/// the lost attempt's completion is refused by its fence, and the runner hands the task back
/// to the relay when it sees that), the relay's `pushed_at` marks (a message pushed twice is claimed
/// once), a lease renewal. Such a commit is visible to every session at once and is on disk
/// within `wal_writer_delay` (× 3 at worst), or as soon as any later synchronous commit
/// flushes the WAL past it: a completion, always synchronous, therefore never outlives its
/// claim. A worker killed right after a claim still has its attempt counted: only Postgres
/// itself crashing loses it. Completions, effects and anything a client was told stay on
/// `pool`. Lazy: no connection is opened before the first use.
pub fn bookkeeping_pool(pool: &PgPool) -> PgPool {
    let options = (*pool.connect_options())
        .clone()
        .options([("synchronous_commit", "off")]);
    PgPoolOptions::new()
        .max_connections(BOOKKEEPING_CONNECTIONS)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options)
}

/// True for errors worth retrying at once (deadlock, serialization failure, lost connection).
pub fn is_transient(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => matches!(
            db.code().as_deref(),
            Some("40001") | Some("40P01") | Some("55P03") | Some("57014")
        ),
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statement_timeout_travels_in_the_startup_options() {
        let options = PgConnectOptions::from_str("postgres://u@localhost/db").unwrap();
        let options = with_statement_timeout(options, Duration::from_millis(1500));
        assert_eq!(
            options.get_options(),
            Some("-c statement_timeout=1500"),
            "{options:?}"
        );
        let zero = with_statement_timeout(
            PgConnectOptions::from_str("postgres://u@localhost/db").unwrap(),
            Duration::ZERO,
        );
        assert_eq!(zero.get_options(), Some("-c statement_timeout=1"));
    }
}
