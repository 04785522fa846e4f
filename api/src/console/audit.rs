//! Every console action is logged (who, what, on what, how it went) and recorded in
//! `task_actions`, which the task page shows in its timeline. Written by the api only: the
//! engine's hot path never touches the table.

use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::auth::Principal;

/// One action on one target.
pub struct Action<'a> {
    pub actor: &'a Principal,
    pub action: &'a str,
    /// `task:<id>`, `queue:<name>`, `schedule:<id>`, `kind:<name>`.
    pub target: String,
    pub task: Option<Uuid>,
    /// `done`, `requested`, `refused: <why>`…
    pub outcome: &'a str,
    pub detail: Value,
}

/// Logs and records one action. A failed insert is logged, never hidden behind the
/// action's own result (the action already happened).
pub async fn record(pool: &PgPool, a: Action<'_>) {
    tracing::info!(operator = %a.actor.requester, action = a.action, target = %a.target,
        outcome = a.outcome, detail = %a.detail, "console action");
    let done = sqlx::query(
        "INSERT INTO task_actions (task_id, target, action, actor, outcome, detail) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(a.task)
    .bind(&a.target)
    .bind(a.action)
    .bind(&a.actor.requester)
    .bind(a.outcome)
    .bind(&a.detail)
    .execute(pool)
    .await;
    if let Err(e) = done {
        tracing::error!(error = %e, target = %a.target, "console action not recorded");
    }
}

/// The same action on many tasks (a bulk action), one statement for the batch.
pub async fn record_many(
    pool: &PgPool,
    actor: &Principal,
    action: &str,
    tasks: &[Uuid],
    outcome: &str,
    detail: &Value,
) {
    if tasks.is_empty() {
        return;
    }
    tracing::info!(operator = %actor.requester, action, count = tasks.len(), outcome,
        detail = %detail, "console bulk action");
    let done = sqlx::query(
        "INSERT INTO task_actions (task_id, target, action, actor, outcome, detail) \
         SELECT t, 'task:' || t, $2, $3, $4, $5 FROM unnest($1::uuid[]) AS t",
    )
    .bind(tasks)
    .bind(action)
    .bind(&actor.requester)
    .bind(outcome)
    .bind(detail)
    .execute(pool)
    .await;
    if let Err(e) = done {
        tracing::error!(error = %e, action, "console bulk action not recorded");
    }
}

/// A task's recorded actions, oldest first.
#[derive(Debug, sqlx::FromRow)]
pub struct Recorded {
    pub action: String,
    pub actor: String,
    pub outcome: String,
    pub at: chrono::DateTime<chrono::Utc>,
}

pub async fn of_task(pool: &PgPool, id: Uuid) -> Result<Vec<Recorded>, sqlx::Error> {
    sqlx::query_as(
        "SELECT action, actor, outcome, at FROM task_actions WHERE task_id = $1 \
         ORDER BY at, id LIMIT 200",
    )
    .bind(id)
    .fetch_all(pool)
    .await
}
