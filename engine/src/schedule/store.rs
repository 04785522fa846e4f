//! All SQL on `schedules`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{Cadence, CadenceError, CatchUp, ScheduleSpec};
use crate::task::TaskStatus;

/// A schedule as operators see it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    pub id: String,
    pub kind: String,
    pub params: Value,
    pub cron: Option<String>,
    pub interval_seconds: Option<i32>,
    pub time_zone: String,
    pub catch_up: String,
    pub max_catch_up: i32,
    pub paused: bool,
    pub next_run_at: DateTime<Utc>,
    #[sqlx(flatten)]
    pub last_run: LastRun,
    /// `config` (as the configuration wrote it) or `operator` (changed since by a PATCH).
    pub source: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The task a schedule created last (by a tick or "run now").
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct LastRun {
    #[sqlx(rename = "last_task_id")]
    pub task_id: Option<Uuid>,
    /// The tick it stands for (none for a "run now").
    #[sqlx(rename = "last_tick")]
    pub tick: Option<DateTime<Utc>>,
    #[sqlx(rename = "last_run_at")]
    pub at: Option<DateTime<Utc>>,
    /// The task's status now; none once the task has expired and been deleted.
    #[sqlx(rename = "last_status")]
    pub status: Option<TaskStatus>,
}

impl Schedule {
    /// The cadence the row describes (validated when it was written).
    pub fn cadence(&self) -> Result<Cadence, CadenceError> {
        match (&self.cron, self.interval_seconds) {
            (Some(expr), _) => Cadence::cron(expr, &self.time_zone),
            (None, Some(seconds)) => Cadence::interval(seconds.into()),
            (None, None) => Cadence::interval(0),
        }
    }

    pub fn catch_up_policy(&self) -> CatchUp {
        CatchUp::parse(&self.catch_up).unwrap_or_default()
    }
}

const SELECT: &str = "SELECT s.id, s.kind, s.params, s.cron, s.interval_seconds, s.time_zone, \
    s.catch_up, s.max_catch_up, s.paused, s.next_run_at, s.last_task_id, s.last_tick, \
    s.last_run_at, t.status AS last_status, s.source, s.created_at, s.updated_at \
    FROM schedules s LEFT JOIN tasks t ON t.id = s.last_task_id";

/// How many configuration fingerprints a row remembers.
const REMEMBERED_CONFIGS: i32 = 50;

/// Writes the configured schedules: a new one is inserted; an existing one takes the spec
/// only when the spec's fingerprint was never seen for it (a configuration change), so an
/// operator's pause or edit survives restarts, and a replica still on an older configuration
/// does not undo a newer one. A changed cadence restarts from the next tick after `now`.
/// Returns the ids whose row was (re)written.
pub async fn upsert_config(
    pool: &PgPool,
    specs: &[ScheduleSpec],
    now: DateTime<Utc>,
) -> Result<Vec<String>, sqlx::Error> {
    let mut written = Vec::new();
    for spec in specs {
        let fingerprint = spec.fingerprint();
        let next = spec.cadence.next_after(now).unwrap_or(now);
        let row: Option<String> = sqlx::query_scalar(&format!(
            "INSERT INTO schedules AS s (id, kind, params, cron, interval_seconds, time_zone, \
                 catch_up, max_catch_up, paused, next_run_at, source, config_hash, config_hashes) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'config', $11, ARRAY[$11]) \
             ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind, params = EXCLUDED.params, \
                 cron = EXCLUDED.cron, interval_seconds = EXCLUDED.interval_seconds, \
                 time_zone = EXCLUDED.time_zone, catch_up = EXCLUDED.catch_up, \
                 max_catch_up = EXCLUDED.max_catch_up, paused = EXCLUDED.paused, \
                 next_run_at = CASE WHEN s.cron IS DISTINCT FROM EXCLUDED.cron \
                     OR s.interval_seconds IS DISTINCT FROM EXCLUDED.interval_seconds \
                     OR s.time_zone <> EXCLUDED.time_zone OR s.paused \
                     THEN EXCLUDED.next_run_at ELSE s.next_run_at END, \
                 source = 'config', config_hash = EXCLUDED.config_hash, \
                 config_hashes = (array_append(s.config_hashes, EXCLUDED.config_hash)) \
                     [greatest(1, cardinality(s.config_hashes) + 2 - {REMEMBERED_CONFIGS}):], \
                 updated_at = now() \
             WHERE NOT (EXCLUDED.config_hash = ANY (s.config_hashes)) \
             RETURNING id"
        ))
        .bind(&spec.id)
        .bind(spec.kind.name)
        .bind(&spec.params)
        .bind(spec.cadence.expr())
        .bind(spec.cadence.interval_seconds().map(|s| s as i32))
        .bind(spec.cadence.zone_name())
        .bind(spec.catch_up.as_str())
        .bind(spec.max_catch_up)
        .bind(spec.paused)
        .bind(next)
        .bind(&fingerprint)
        .fetch_optional(pool)
        .await?;
        written.extend(row);
    }
    Ok(written)
}

pub async fn list(pool: &PgPool) -> Result<Vec<Schedule>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} ORDER BY s.id"))
        .fetch_all(pool)
        .await
}

pub async fn get(conn: &mut PgConnection, id: &str) -> Result<Option<Schedule>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} WHERE s.id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// Locks up to `limit` due, active schedules that no other replica holds.
pub(crate) async fn lock_due(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Schedule>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{SELECT} WHERE s.id IN (SELECT id FROM schedules WHERE NOT paused AND next_run_at <= $1 \
             ORDER BY next_run_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
    ))
    .bind(now)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Moves a schedule on after a tick (or a "run now", which leaves `next_run_at`).
pub(crate) async fn record_run(
    conn: &mut PgConnection,
    id: &str,
    next_run_at: Option<DateTime<Utc>>,
    tick: Option<DateTime<Utc>>,
    task: Option<Uuid>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE schedules SET next_run_at = COALESCE($2, next_run_at), \
             last_tick = CASE WHEN $4::uuid IS NULL THEN last_tick ELSE $3 END, \
             last_task_id = COALESCE($4, last_task_id), \
             last_run_at = CASE WHEN $4::uuid IS NULL THEN last_run_at ELSE now() END, \
             updated_at = now() \
         WHERE id = $1",
    )
    .bind(id)
    .bind(next_run_at)
    .bind(tick)
    .bind(task)
    .execute(conn)
    .await?;
    Ok(())
}

/// An operator's change; absent fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct SchedulePatch {
    pub paused: Option<bool>,
    pub cron: Option<String>,
    pub interval_seconds: Option<i64>,
    pub time_zone: Option<String>,
    pub catch_up: Option<CatchUp>,
    pub max_catch_up: Option<i32>,
}

/// Why a patch was not applied.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error("no schedule {0:?}")]
    NotFound(String),
    #[error(transparent)]
    Invalid(#[from] CadenceError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Applies `patch` to schedule `id`, marking it as the operator's. A new cadence, or a
/// resume, starts from the next tick after `now` (ticks missed while paused are not run).
pub async fn update(
    pool: &PgPool,
    id: &str,
    patch: &SchedulePatch,
    now: DateTime<Utc>,
) -> Result<Schedule, PatchError> {
    if patch.cron.is_some() && patch.interval_seconds.is_some() {
        return Err(CadenceError {
            field: "cron",
            message: "give either cron or intervalSeconds, not both".into(),
        }
        .into());
    }
    if let Some(max) = patch.max_catch_up {
        if !(1..=1000).contains(&max) {
            return Err(CadenceError {
                field: "maxCatchUp",
                message: "must be between 1 and 1000".into(),
            }
            .into());
        }
    }
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT 1 FROM schedules WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| PatchError::NotFound(id.to_string()))?;
    let current = get(&mut tx, id)
        .await?
        .ok_or_else(|| PatchError::NotFound(id.to_string()))?;
    let zone = patch.time_zone.as_deref().unwrap_or(&current.time_zone);
    let zone_on_interval = patch.time_zone.as_deref().is_some_and(|z| z != "UTC");
    let cadence = match (&patch.cron, patch.interval_seconds, &current.cron) {
        (Some(expr), _, _) | (None, None, Some(expr)) => Cadence::cron(expr, zone)?,
        (None, _, _) if zone_on_interval => {
            return Err(CadenceError {
                field: "timeZone",
                message: "an interval has no time zone (only a cron expression does)".into(),
            }
            .into())
        }
        (None, Some(seconds), _) => Cadence::interval(seconds)?,
        (None, None, None) => current.cadence()?,
    };
    let paused = patch.paused.unwrap_or(current.paused);
    let cadence_changed = cadence.expr() != current.cron.as_deref()
        || cadence.interval_seconds() != current.interval_seconds.map(i64::from)
        || cadence.zone_name() != current.time_zone;
    let resumed = current.paused && !paused;
    let catch_up = patch
        .catch_up
        .map_or(current.catch_up.clone(), |c| c.as_str().to_string());
    let next_run_at = if cadence_changed || resumed {
        cadence.next_after(now).unwrap_or(now)
    } else {
        current.next_run_at
    };
    sqlx::query(
        "UPDATE schedules SET cron = $2, interval_seconds = $3, time_zone = $4, catch_up = $5, \
             max_catch_up = $6, paused = $7, next_run_at = $8, source = 'operator', \
             updated_at = now() \
         WHERE id = $1",
    )
    .bind(id)
    .bind(cadence.expr())
    .bind(cadence.interval_seconds().map(|s| s as i32))
    .bind(cadence.zone_name())
    .bind(catch_up)
    .bind(patch.max_catch_up.unwrap_or(current.max_catch_up))
    .bind(paused)
    .bind(next_run_at)
    .execute(&mut *tx)
    .await?;
    let updated = get(&mut tx, id)
        .await?
        .ok_or_else(|| PatchError::NotFound(id.to_string()))?;
    tx.commit().await?;
    Ok(updated)
}
