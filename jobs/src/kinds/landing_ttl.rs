//! `landing_ttl`: the nightly landing lifecycle of seeds/001 (`runLandingTtlJob`). Moves
//! events `active → archived → expired` by their TTL (rules in [`crate::landing`]), 500 rows
//! per transaction, then deletes the landing caches in Redis, all while holding the Redis
//! lock `LANDING_TTL_LOCK_KEY`.
//!
//! Params (all optional, extra fields ignored so schedules may add their own):
//! `dryRun` reports what would move and changes nothing (no lock, no cache deletion);
//! `force` runs even when another run holds the lock (taking it if free).
//!
//! A run that finds the lock held by another run completes at once with
//! `{"skipped": "locked"}`: the other run is doing the same work, and a later run picks up
//! whatever it leaves. Nothing is ever applied twice (each batch only moves rows that are
//! still due), and a run interrupted between batches is finished by its retry, which takes
//! its own lock over (the lock's token is the task id).

use std::time::Duration;

use chrono::Utc;
use serde_json::json;

use engine::{retry::Backoff, Done, JobError, Kind};

use crate::{
    landing::{self, Transitions},
    queues,
    redis_lock::HeldLock,
    Ctx, Services, ServicesExt,
};

pub const NAME: &str = "landing_ttl";

/// Events moved per transaction: short transactions, each committed on its own, so a crash
/// loses at most the batch in flight.
pub const BATCH: i64 = 500;

/// The lock's TTL; renewed every third of it while the run lasts, so a crashed run frees
/// it within this long.
const LOCK_TTL: Duration = Duration::from_secs(30);

/// Event ids listed by a dry run.
const DRY_RUN_SAMPLE: i64 = 50;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    pub dry_run: bool,
    pub force: bool,
}

impl Params {
    /// Reads a task's params, naming the field that does not decode.
    pub fn parse(params: &serde_json::Value) -> Result<Self, super::FieldError> {
        for field in ["dryRun", "force"] {
            match params.get(field) {
                None | Some(serde_json::Value::Bool(_)) | Some(serde_json::Value::Null) => {}
                Some(_) => {
                    return Err(super::FieldError {
                        field,
                        message: "must be true or false".into(),
                    })
                }
            }
        }
        let flag = |f: &str| params.get(f).and_then(serde_json::Value::as_bool) == Some(true);
        Ok(Self {
            dry_run: flag("dryRun"),
            force: flag("force"),
        })
    }
}

/// The `landing_ttl` kind.
pub struct LandingTtl;

impl Kind for LandingTtl {
    type State = Services;
    const NAME: &'static str = NAME;
    const QUEUE: &'static str = queues::MAINTENANCE;
    const MAX_ATTEMPTS: i32 = 3;
    const TIMEOUT: Duration = Duration::from_secs(30 * 60);
    const BACKOFF: Backoff = Backoff::new(Duration::from_secs(30), Duration::from_secs(600));

    async fn run(ctx: Ctx) -> Result<Done, JobError> {
        run(ctx).await
    }
}

async fn run(ctx: Ctx) -> Result<Done, JobError> {
    let raw: serde_json::Value = ctx.params()?;
    let params =
        Params::parse(&raw).map_err(|e| JobError::permanent("invalid_params", e.to_string()))?;
    let cfg = &ctx.config().landing;
    let default_ttl = cfg.default_ttl_days;
    // One reference time for the whole run: every batch agrees on what is due.
    let as_of = Utc::now();
    if params.dry_run {
        let mut conn = ctx.pool().acquire().await?;
        let (would, sample) =
            landing::preview(&mut conn, as_of, default_ttl, DRY_RUN_SAMPLE).await?;
        return Ok(Done::Result(json!({
            "dryRun": true,
            "asOf": as_of,
            "defaultTtlDays": default_ttl,
            "wouldChange": would,
            "total": would.total(),
            "sample": sample,
        })));
    }

    let (redis, keys) = ctx.redis();
    let lock_key = cfg.lock_key(keys.prefix());
    let token = ctx.id.to_string();
    let lock = HeldLock::acquire(&redis, &lock_key, &token, LOCK_TTL)
        .await
        .map_err(|e| JobError::retryable("redis_unavailable", format!("lock not taken: {e}")))?;
    if lock.is_none() && !params.force {
        tracing::info!(lock = %lock_key, "landing_ttl skipped: another run holds the lock");
        return Ok(Done::Result(
            json!({ "skipped": "locked", "lock": lock_key }),
        ));
    }
    let lock_state = if lock.is_some() { "held" } else { "forced" };

    let outcome = apply(&ctx, lock.as_ref(), as_of, default_ttl).await;
    // The caches go even after a partial run: whatever moved must not be served stale.
    let caches = landing::invalidate_caches(&redis, keys.prefix(), &lock_key).await;
    if let Some(lock) = lock {
        if let Err(e) = lock.release().await {
            tracing::warn!(lock = %lock_key, error = %e, "lock not released; it expires by its TTL");
        }
    }
    let (moved, batches) = outcome?;
    let caches_deleted = caches.map_err(|e| {
        JobError::retryable(
            "redis_unavailable",
            format!("landing caches not invalidated: {e}"),
        )
    })?;
    tracing::info!(
        archived = moved.active_to_archived,
        expired = moved.archived_to_expired + moved.active_to_expired,
        caches_deleted,
        "landing_ttl done"
    );
    Ok(Done::Result(json!({
        "asOf": as_of,
        "defaultTtlDays": default_ttl,
        "transitions": moved,
        "total": moved.total(),
        "batches": batches,
        "cacheKeysDeleted": caches_deleted,
        "lock": lock_state,
    })))
}

/// Moves due events batch by batch until none is left, stopping between batches on a
/// cancel or a lost lock (the committed batches stay; a rerun does the rest).
async fn apply(
    ctx: &Ctx,
    lock: Option<&HeldLock>,
    as_of: chrono::DateTime<Utc>,
    default_ttl: i32,
) -> Result<(Transitions, u64), JobError> {
    let mut total = Transitions::default();
    let mut batches = 0u64;
    ctx.progress(0, "transitions").await;
    loop {
        ctx.check_cancel().await?;
        if lock.is_some_and(HeldLock::is_lost) {
            return Err(JobError::retryable(
                "lock_lost",
                format!("the lock was lost after {batches} batches; the retry finishes the rest"),
            ));
        }
        let mut tx = ctx.pool().begin().await?;
        let (moved, n) = landing::apply_batch(&mut tx, as_of, default_ttl, BATCH).await?;
        tx.commit().await?;
        if n == 0 {
            return Ok((total, batches));
        }
        batches += 1;
        total += moved;
    }
}
