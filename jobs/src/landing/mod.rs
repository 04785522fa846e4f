//! Event landing pages (seeds/001, "Jobs nocturnos"): their lifecycle `active → archived →
//! expired` by a TTL after the event's date, and their Redis caches. The `landing_ttl` kind
//! drives it (`kinds::landing_ttl`).
//!
//! An event's date is `COALESCE(ends_at, starts_at)`; its TTL is its `landing_ttl_days` or
//! the default, clamped to 30–365. At a run's reference time `as_of` an event is due for
//! `archived` once `date + TTL <= as_of` and for `expired` once `date + 2 × TTL <= as_of`
//! (one that crossed both since the last run goes straight to `expired`). Every run compares
//! against one `as_of`, so each batch moves rows out of the candidate set for good: the loop
//! ends, a rerun finds only what is left, and nothing moves twice.

pub mod config;

use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;
use sqlx::{PgConnection, Row};

pub use config::LandingConfig;

/// Transitions of one run, by (from, to).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Transitions {
    pub active_to_archived: u64,
    pub archived_to_expired: u64,
    pub active_to_expired: u64,
}

impl std::ops::AddAssign for Transitions {
    fn add_assign(&mut self, other: Self) {
        self.active_to_archived += other.active_to_archived;
        self.archived_to_expired += other.archived_to_expired;
        self.active_to_expired += other.active_to_expired;
    }
}

impl Transitions {
    pub fn total(&self) -> u64 {
        self.active_to_archived + self.archived_to_expired + self.active_to_expired
    }

    fn add(&mut self, from: &str, to: &str, n: u64) {
        match (from, to) {
            ("active", "archived") => self.active_to_archived += n,
            ("archived", "expired") => self.archived_to_expired += n,
            ("active", "expired") => self.active_to_expired += n,
            _ => {}
        }
    }
}

/// The candidates at `$1` (as_of) with the default TTL `$2` (days): `(id, from, to)`.
/// The first condition only narrows the scan to the partial index (no TTL is under 30
/// days); the CASE decides.
const DUE: &str = "
    SELECT e.id, e.landing_status AS from_status,
           CASE WHEN d.at + 2 * d.ttl <= $1 THEN 'expired' ELSE 'archived' END AS to_status
    FROM events e
    CROSS JOIN LATERAL (SELECT COALESCE(e.ends_at, e.starts_at) AS at,
                               make_interval(days => LEAST(365, GREATEST(30,
                                   COALESCE(e.landing_ttl_days, $2)))) AS ttl) d
    WHERE e.landing_status <> 'expired'
      AND COALESCE(e.ends_at, e.starts_at) <= $1 - interval '30 days'
      AND (   (e.landing_status = 'active'   AND d.at + d.ttl     <= $1)
           OR (e.landing_status = 'archived' AND d.at + 2 * d.ttl <= $1))";

/// Moves up to `limit` due events in the caller's transaction (rows another run holds are
/// skipped, not waited for); returns what moved. Oldest first, in the order of
/// `events_landing_due_idx`: with 300,000 events and none due the batch reads the index's
/// range in 3.5 ms, where an id order walked the whole table (70 ms).
pub async fn apply_batch(
    conn: &mut PgConnection,
    as_of: DateTime<Utc>,
    default_ttl_days: i32,
    limit: i64,
) -> Result<(Transitions, u64), sqlx::Error> {
    let sql = format!(
        "WITH due AS ({DUE} ORDER BY COALESCE(e.ends_at, e.starts_at) LIMIT $3 \
                   FOR UPDATE OF e SKIP LOCKED), \
         moved AS (UPDATE events e SET landing_status = due.to_status, landing_status_at = $1 \
                   FROM due WHERE e.id = due.id RETURNING due.from_status, due.to_status) \
         SELECT from_status, to_status, count(*) AS n FROM moved GROUP BY 1, 2"
    );
    let rows = sqlx::query(&sql)
        .bind(as_of)
        .bind(default_ttl_days)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    let mut t = Transitions::default();
    let mut moved = 0;
    for r in rows {
        let n = r.try_get::<i64, _>("n")? as u64;
        t.add(r.try_get("from_status")?, r.try_get("to_status")?, n);
        moved += n;
    }
    Ok((t, moved))
}

/// What a run at `as_of` would move, without moving it: the counts and the first `sample`
/// event ids.
pub async fn preview(
    conn: &mut PgConnection,
    as_of: DateTime<Utc>,
    default_ttl_days: i32,
    sample: i64,
) -> Result<(Transitions, Vec<String>), sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT from_status, to_status, count(*) AS n, \
                (array_agg(id ORDER BY id))[1:{sample}] AS ids \
         FROM ({DUE}) due GROUP BY 1, 2 ORDER BY 1, 2"
    ))
    .bind(as_of)
    .bind(default_ttl_days)
    .fetch_all(&mut *conn)
    .await?;
    let mut t = Transitions::default();
    let mut ids = Vec::new();
    for r in rows {
        t.add(
            r.try_get("from_status")?,
            r.try_get("to_status")?,
            r.try_get::<i64, _>("n")? as u64,
        );
        ids.extend(r.try_get::<Vec<String>, _>("ids")?);
    }
    ids.sort();
    ids.truncate(sample.max(0) as usize);
    Ok((t, ids))
}

/// Deletes the landing caches (`<prefix>:landing:*`, which holds `landing:dashboard:*`)
/// with SCAN and UNLINK in pages, never KEYS (which blocks Redis for the whole keyspace).
/// `keep` (the lock, when an operator put it under the same pattern) is left alone.
pub async fn invalidate_caches(
    conn: &ConnectionManager,
    prefix: &str,
    keep: &str,
) -> redis::RedisResult<u64> {
    let mut c = conn.clone();
    let pattern = format!("{prefix}:landing:*");
    let mut cursor: u64 = 0;
    let mut deleted = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(500)
            .query_async(&mut c)
            .await?;
        let doomed: Vec<&String> = keys.iter().filter(|k| k.as_str() != keep).collect();
        if !doomed.is_empty() {
            let n: u64 = redis::cmd("UNLINK")
                .arg(&doomed)
                .query_async(&mut c)
                .await?;
            deleted += n;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}
