//! `task_cleanup`: retention (DESIGN §3). Deletes finished tasks past their `expires_at`
//! together with their stored files and their Redis leftovers, then sweeps what a crash can
//! leave behind: export files whose task no longer exists, multipart uploads never
//! completed or aborted, and the registrations of apalis workers gone for a day. Runs from
//! the worker's cron (`TASK_CLEANUP_INTERVAL_MINUTES`, one task per tick across replicas)
//! and can be enqueued by hand.

use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use uuid::Uuid;

use engine::{retry::Backoff, store, Done, JobError, Kind};

use super::report_export;
use crate::{queues, storage::EXPORTS_PREFIX, Ctx, Services, ServicesExt};

pub const NAME: &str = "task_cleanup";

/// Rows deleted per transaction: short transactions, and progress between them.
const BATCH: i64 = 500;

/// A file is an orphan only when its task is gone and it is older than the task TTL plus
/// this margin (a task completing right now must not lose its file).
const ORPHAN_MARGIN: Duration = Duration::from_secs(3600);

/// An apalis worker not seen for this long is gone; its registration is removed.
const WORKER_GONE_AFTER: Duration = Duration::from_secs(86_400);

/// The `task_cleanup` kind.
pub struct TaskCleanup;

impl Kind for TaskCleanup {
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
    ctx.progress(0, "tasks").await;
    let (tasks, files) = expired_tasks(&ctx).await?;
    ctx.progress(60, "orphans").await;
    let (orphans, uploads) = orphan_files(&ctx).await;
    ctx.progress(90, "redis").await;
    let workers = stale_workers(&ctx).await;
    tracing::info!(tasks, files, orphans, uploads, workers, "retention done");
    Ok(Done::Result(json!({
        "tasksDeleted": tasks,
        "filesDeleted": files,
        "orphanFilesDeleted": orphans,
        "uploadsAborted": uploads,
        "workerRegistrationsDeleted": workers,
    })))
}

/// Deletes expired finished tasks batch by batch: their files first, then the rows (a file
/// that cannot be deleted keeps its row, so the next run tries again), then the progress
/// hashes.
async fn expired_tasks(ctx: &Ctx) -> Result<(u64, u64), JobError> {
    let store = ctx.storage().ok();
    let (mut redis, keys) = ctx.redis();
    let mut tasks = 0u64;
    let mut files = 0u64;
    loop {
        ctx.check_cancel().await?;
        let mut tx = ctx.pool().begin().await?;
        let rows = store::lock_expired(&mut tx, BATCH).await?;
        if rows.is_empty() {
            break;
        }
        let mut doomed: Vec<Uuid> = Vec::with_capacity(rows.len());
        for (id, kind, result) in &rows {
            let key = (kind == report_export::NAME)
                .then(|| result.as_ref().and_then(report_export::stored_key))
                .flatten();
            if let Some(key) = key {
                let Some(store) = store else {
                    continue; // storage unavailable: keep the row for the next run
                };
                match store.delete(key).await {
                    Ok(()) => files += 1,
                    Err(e) => {
                        tracing::warn!(task.id = %id, key, error = %e, "expired export file not deleted; task kept for the next run");
                        continue;
                    }
                }
            }
            doomed.push(*id);
        }
        let deleted = store::delete_many(&mut tx, &doomed).await?;
        tx.commit().await?;
        tasks += deleted;
        let progress_keys: Vec<String> = doomed.iter().map(|id| keys.task_progress(*id)).collect();
        if !progress_keys.is_empty() {
            let _: Result<i64, _> = redis::cmd("UNLINK")
                .arg(&progress_keys)
                .query_async(&mut redis)
                .await;
        }
        if (rows.len() as i64) < BATCH || doomed.is_empty() {
            break;
        }
    }
    Ok((tasks, files))
}

/// Export files no task refers to any more (a worker crashed after the upload, or a row was
/// deleted by hand), and abandoned multipart uploads. Best effort: problems are logged.
async fn orphan_files(ctx: &Ctx) -> (u64, u64) {
    let Ok(store) = ctx.storage() else {
        return (0, 0);
    };
    let horizon = Utc::now()
        - chrono::Duration::from_std(ctx.config().task_ttl + ORPHAN_MARGIN).unwrap_or_default();
    let mut deleted = 0;
    match store.list_older_than(horizon).await {
        Ok(listed) => {
            for obj in listed {
                // exports/<task id>/<file name>
                let task = obj
                    .key
                    .strip_prefix(EXPORTS_PREFIX)
                    .and_then(|rest| rest.split('/').next())
                    .and_then(|id| Uuid::parse_str(id).ok());
                let exists = match task {
                    Some(id) => sqlx::query_scalar::<_, i32>("SELECT 1 FROM tasks WHERE id = $1")
                        .bind(id)
                        .fetch_optional(ctx.pool())
                        .await
                        .map(|r| r.is_some()),
                    None => Ok(false),
                };
                match exists {
                    Ok(false) => match store.delete(&obj.key).await {
                        Ok(()) => deleted += 1,
                        Err(e) => {
                            tracing::warn!(key = %obj.key, error = %e, "orphan export file not deleted")
                        }
                    },
                    Ok(true) => {}
                    Err(e) => tracing::warn!(error = %e, "orphan check failed"),
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "export files not listed"),
    }
    let uploads = store
        .abort_stale_uploads(Utc::now() - chrono::Duration::days(1))
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "stale multipart uploads not listed");
            0
        });
    (deleted, uploads as u64)
}

/// apalis registers every worker incarnation (`<queue>:workers` sorted set by last
/// heartbeat, plus a metadata hash) and never removes them; restarts accumulate them.
async fn stale_workers(ctx: &Ctx) -> u64 {
    let (mut redis, keys) = ctx.redis();
    let cutoff = Utc::now().timestamp() - WORKER_GONE_AFTER.as_secs() as i64;
    let mut removed = 0u64;
    for q in queues::ALL {
        let set = keys.apalis_workers(q);
        let gone: Vec<String> = match redis::cmd("ZRANGEBYSCORE")
            .arg(&set)
            .arg("-inf")
            .arg(cutoff)
            .query_async(&mut redis)
            .await
        {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "apalis worker registrations not read");
                return removed;
            }
        };
        for name in gone {
            let meta = keys.apalis_worker_metadata(q, &name);
            let done: Result<(), _> = redis::pipe()
                .cmd("ZREM")
                .arg(&set)
                .arg(&name)
                .ignore()
                .cmd("UNLINK")
                .arg(&meta)
                .ignore()
                .query_async(&mut redis)
                .await;
            if done.is_ok() {
                removed += 1;
            }
        }
    }
    removed
}
