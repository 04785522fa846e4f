//! What clients and operators do to tasks: cancel and re-drive. Each runs the kind's hook in
//! the transaction of the transition, so a kind's own rows (a delivery, a bulk send's
//! children) never disagree with their task.

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    hooks::KindHooks,
    store,
    task::{TaskRecord, TaskStatus},
};

#[derive(Debug)]
pub enum CancelOutcome {
    /// It had not started: cancelled at once.
    Cancelled(TaskRecord),
    /// It is running: the handler will stop at its next check.
    Requested(TaskRecord),
    /// Already finished: nothing to cancel.
    AlreadyFinished(TaskRecord),
    NotFound,
}

/// Cancels a task for its requester (`None` = an operator); a task that had not started
/// ends at once, with its kind's terminal hook in the same transaction.
pub async fn cancel(
    pool: &PgPool,
    hooks: &KindHooks,
    id: Uuid,
    requester: Option<&str>,
) -> Result<CancelOutcome, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let updated = store::cancel(&mut tx, id, requester).await?;
    if let Some(rec) = &updated {
        let error = serde_json::json!({ "code": "cancelled", "message": "cancelled on request" });
        hooks
            .after_transition(&mut tx, &rec.kind, rec.id, Some(rec.status()), Some(error))
            .await?;
    }
    tx.commit().await?;
    Ok(match updated {
        Some(rec) if rec.status() == TaskStatus::Cancelled => CancelOutcome::Cancelled(rec),
        Some(rec) => CancelOutcome::Requested(rec),
        None => match store::get(pool, id, requester).await? {
            Some(rec) => CancelOutcome::AlreadyFinished(rec),
            None => CancelOutcome::NotFound,
        },
    })
}

/// Re-drives a `failed` or `dead` task (operator action), with its kind's re-drive hook in
/// the same transaction. Returns the task if it was re-driven.
pub async fn redrive(
    pool: &PgPool,
    hooks: &KindHooks,
    id: Uuid,
    ttl: Duration,
) -> Result<Option<TaskRecord>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let rec = store::redrive(&mut tx, id, ttl).await?;
    if let Some(rec) = &rec {
        hooks.redriven(&mut tx, &rec.kind, &[rec.id]).await?;
    }
    tx.commit().await?;
    Ok(rec)
}

/// Re-drives every task in `status` (`failed` or `dead`), optionally of one kind, with each
/// kind's re-drive hook in the same transaction; returns their ids.
pub async fn redrive_all(
    pool: &PgPool,
    hooks: &KindHooks,
    status: TaskStatus,
    kind: Option<&str>,
    ttl: Duration,
) -> Result<Vec<Uuid>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let rows = store::redrive_all(&mut tx, status, kind, ttl).await?;
    let mut by_kind: std::collections::BTreeMap<&str, Vec<Uuid>> = Default::default();
    for (id, kind) in &rows {
        by_kind.entry(kind.as_str()).or_default().push(*id);
    }
    for (kind, ids) in by_kind {
        hooks.redriven(&mut tx, kind, &ids).await?;
    }
    tx.commit().await?;
    Ok(rows.into_iter().map(|(id, _)| id).collect())
}
