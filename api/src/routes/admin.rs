//! Operator routes (admin token): queue health, the dead-letter queue and its re-drive.

use std::collections::HashMap;

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use engine::{store, TaskStatus};
use jobs::kinds::assignment::id_problem;
use serde_json::json;

use super::tasks::view;
use crate::openapi::{
    params::{AdminTaskList, AnyTaskId, IdempotencyKey, QueueName, RedriveFilter},
    replies::{AdminTaskPage, QueueList, QueuePaused, Redriven, WorkerList},
    responses::*,
    schemas::Task,
};
use crate::{auth::Principal, error::ApiError, request_id, AppState};

pub(crate) fn require_admin(p: &Principal) -> Result<(), ApiError> {
    if p.admin {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "an admin token is required",
        ))
    }
}

/// The read-only views: an operator token is enough (`auth::authorize` already checked
/// this; the handler keeps its own guard).
pub(crate) fn require_observer(p: &Principal) -> Result<(), ApiError> {
    if p.can_observe() {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "an admin or operator token is required",
        ))
    }
}

/// The statuses an operator may re-drive.
pub const REDRIVABLE: [&str; 2] = ["failed", "dead"];

fn bad(param: &str, problem: &str) -> ApiError {
    ApiError::field(StatusCode::BAD_REQUEST, "validation_failed", param, problem)
}

fn parse_id(raw: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(raw).map_err(|_| ApiError::not_found(format!("no task with id {raw:?}")))
}

/// `status` (and, for re-drive, only `failed` or `dead`) and `kind` from the query string.
fn filters(
    q: &HashMap<String, String>,
    redrive: bool,
) -> Result<(Option<TaskStatus>, Option<String>), ApiError> {
    let status = match super::query_value(q, "status") {
        None if redrive => return Err(bad("status", "is required: failed or dead")),
        None => None,
        Some(s) => match TaskStatus::parse(s) {
            Some(st) if !redrive || matches!(st, TaskStatus::Failed | TaskStatus::Dead) => Some(st),
            _ if redrive => return Err(bad("status", "must be failed or dead")),
            _ => return Err(bad("status", "must be a task status (pending, running, completed, failed, cancelled, retrying, dead)")),
        },
    };
    let kind = super::query_value(q, "kind").map(str::to_string);
    // Kind names are ids (`report_export`, `test.failing`); anything else, a NUL byte
    // included (Postgres refuses it in text), can match no task and is a 400.
    if let Some(problem) = kind.as_deref().and_then(id_problem) {
        return Err(bad("kind", problem));
    }
    Ok((status, kind))
}

/// `GET /admin/queues`: per queue, tasks by state, the oldest due task's age and the
/// messages waiting in Redis.
#[utoipa::path(get, path = "/admin/queues", tag = "operators",
    summary = "Per queue: tasks by state, oldest due age, messages in Redis",
    responses(
        (status = 200, description = "`{data: [...]}`", body = QueueList),
        Unauthorized, NotAdmin, StoreDown, TooLarge))]
pub async fn queues(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Response, ApiError> {
    require_observer(&principal)?;
    let stats = store::queue_stats(&state.pool, &jobs::queues::ALL).await?;
    let transport = engine::transport::MessageQueue::new(
        state.redis.clone(),
        engine::redis_conn::Keys::new(state.config.core.redis_prefix.clone()),
        state.config.core.queue_max_ready,
    );
    let pauses = engine::transport::pause::list(&state.pool).await?;
    let mut out = Vec::new();
    for s in &stats {
        let mut v = json!(s);
        v["inRedis"] = json!(transport.depth(&s.queue).await.ok());
        let pause = pauses.iter().find(|p| p.queue == s.queue);
        v["paused"] = json!(pause.is_some());
        v["pausedAt"] = json!(pause.map(|p| p.paused_at));
        v["pausedBy"] = json!(pause.map(|p| &p.paused_by));
        out.push(v);
    }
    Ok(Json(json!({ "data": out, "requestId": request_id::current() })).into_response())
}

/// `GET /admin/tasks?status=dead&kind=…&page=&pageSize=`: tasks of every requester.
#[utoipa::path(get, path = "/admin/tasks", tag = "operators",
    summary = "Tasks of every requester (`status=dead`: the dead-letter queue)",
    params(AdminTaskList),
    responses(
        (status = 200, description = "`{data, meta}`", body = AdminTaskPage),
        Invalid, Unauthorized, NotAdmin, PostgresDown, TooLarge))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    require_observer(&principal)?;
    let (status, kind) = filters(&q, false)?;
    let page: i64 = match q.get("page") {
        None => 1,
        Some(p) => p
            .parse()
            .ok()
            .filter(|p| (1..=super::MAX_PAGE).contains(p))
            .ok_or_else(|| bad("page", "must be a whole number from 1"))?,
    };
    let size: i64 = match q.get("pageSize") {
        None => 50,
        Some(p) => p
            .parse()
            .ok()
            .filter(|p| (1..=super::MAX_PAGE_SIZE).contains(p))
            .ok_or_else(|| {
                bad(
                    "pageSize",
                    &format!("must be a whole number from 1 to {}", super::MAX_PAGE_SIZE),
                )
            })?,
    };
    let (rows, total) = store::list(
        &state.pool,
        status,
        kind.as_deref(),
        size,
        (page - 1) * size,
    )
    .await?;
    let data: Vec<_> = rows
        .iter()
        .map(|r| {
            let mut v = view(r, None);
            v["requester"] = json!(r.requester);
            v
        })
        .collect();
    Ok(Json(json!({
        "data": data,
        "meta": { "page": page, "pageSize": size, "total": total, "pages": (total + size - 1) / size },
        "requestId": request_id::current(),
    }))
    .into_response())
}

/// `POST /admin/tasks/{id}/retry`: re-drive one failed or dead task.
#[utoipa::path(post, path = "/admin/tasks/{id}/retry", tag = "operators",
    summary = "Re-drive one failed/dead task",
    params(AnyTaskId),
    responses(
        (status = 404, description = "No such task", body = ErrorBody),
        (status = 409, description = "Not failed/dead", body = ErrorBody),
        Unauthorized, NotAdmin,
        (status = 202, description = "The task", body = Task),
        StoreDown,
        (status = 400, description = "the id is not a task id (uuid)", body = ErrorBody),
        TooLarge))]
pub async fn retry_one(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require_admin(&principal)?;
    let id = parse_id(&id)?;
    match engine::actions::redrive(&state.pool, &state.hooks, id, state.config.core.task_ttl)
        .await?
    {
        Some(rec) => {
            state.notifier.changed(&[id]);
            tracing::info!(task.id = %id, operator = %principal.requester, "task re-driven");
            Ok((StatusCode::ACCEPTED, Json(view(&rec, None))).into_response())
        }
        None => match store::get(&state.pool, id, None).await? {
            Some(rec) => Err(ApiError::new(
                StatusCode::CONFLICT,
                "not_redrivable",
                format!(
                    "task {id} is {}; only failed or dead tasks can be re-driven",
                    rec.status
                ),
            )),
            None => Err(ApiError::not_found(format!("no task with id {id}"))),
        },
    }
}

/// `POST /admin/tasks/retry?status=dead&kind=…`: re-drive them all.
#[utoipa::path(post, path = "/admin/tasks/retry", tag = "operators",
    summary = "Re-drive every failed/dead task matching",
    params(RedriveFilter),
    responses(Invalid, Unauthorized, NotAdmin,
        (status = 202, description = "`{redriven, taskIds}`: the tasks sent back to pending", body = inline(Redriven)),
        StoreDown, TooLarge))]
pub async fn retry_all(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    require_admin(&principal)?;
    let (status, kind) = filters(&q, true)?;
    let status = status.unwrap_or(TaskStatus::Dead);
    let ids = engine::actions::redrive_all(
        &state.pool,
        &state.hooks,
        status,
        kind.as_deref(),
        state.config.core.task_ttl,
    )
    .await?;
    state.notifier.changed(&ids);
    tracing::info!(count = ids.len(), status = %status, kind = ?kind, operator = %principal.requester, "tasks re-driven");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "redriven": ids.len(), "taskIds": ids, "requestId": request_id::current() })),
    )
        .into_response())
}

/// `DELETE /admin/tasks/{id}`: remove a task that is not running.
#[utoipa::path(delete, path = "/admin/tasks/{id}", tag = "operators",
    summary = "Delete a task that is not running",
    params(AnyTaskId),
    responses(
        (status = 404, description = "No such task", body = ErrorBody),
        (status = 409, description = "Running", body = ErrorBody),
        Unauthorized, NotAdmin,
        (status = 204, description = "Deleted"),
        StoreDown,
        (status = 400, description = "the id is not a task id (uuid)", body = ErrorBody),
        TooLarge))]
pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require_admin(&principal)?;
    let id = parse_id(&id)?;
    if store::delete(&state.pool, id).await? {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    match store::get(&state.pool, id, None).await? {
        Some(_) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "task_running",
            format!("task {id} is running; cancel it first"),
        )),
        None => Err(ApiError::not_found(format!("no task with id {id}"))),
    }
}

/// A worker process whose apalis heartbeat is older than this is reported as not alive.
const ALIVE_WITHIN_SECONDS: i64 = 30;

/// `GET /admin/workers`: worker processes, from their apalis registrations (one per queue
/// they serve, with the last heartbeat) and the tasks they are running now.
#[utoipa::path(get, path = "/admin/workers", tag = "operators",
    summary = "Worker processes: queues, last heartbeat, running tasks",
    responses(
        (status = 200, description = "`{data: [...]}`", body = WorkerList),
        Unauthorized, NotAdmin, StoreDown, TooLarge))]
pub async fn workers(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Response, ApiError> {
    require_observer(&principal)?;
    let data = worker_rows(&state).await?;
    Ok(Json(json!({ "data": data, "requestId": request_id::current() })).into_response())
}

/// The rows of `GET /admin/workers` (the console's workers page shows the same).
pub async fn worker_rows(state: &AppState) -> Result<Vec<serde_json::Value>, ApiError> {
    let keys = engine::redis_conn::Keys::new(state.config.core.redis_prefix.clone());
    let now = chrono::Utc::now().timestamp();
    let mut redis = state.redis.clone();
    // instance → (queue, last heartbeat, concurrency)
    let mut seen: std::collections::BTreeMap<String, Vec<(String, i64, Option<i64>)>> =
        Default::default();
    for q in jobs::queues::ALL {
        let set = keys.apalis_workers(q);
        let members: Vec<(String, i64)> = redis::cmd("ZRANGEBYSCORE")
            .arg(&set)
            .arg(now - 86_400)
            .arg("+inf")
            .arg("WITHSCORES")
            .query_async(&mut redis)
            .await
            .map_err(|e| ApiError::unavailable("redis", e))?;
        for (name, last) in members {
            let concurrency: Option<i64> = redis::cmd("HGET")
                .arg(keys.apalis_worker_metadata(q, &name))
                .arg("concurrency")
                .query_async(&mut redis)
                .await
                .ok()
                .flatten();
            // apalis name = <instance>-<queue>-<restart number> (worker/src/lib.rs)
            let instance = name
                .strip_suffix(&format!("-{}", name.rsplit('-').next().unwrap_or("")))
                .and_then(|rest| rest.strip_suffix(&format!("-{q}")))
                .unwrap_or(&name)
                .to_string();
            seen.entry(instance)
                .or_default()
                .push((q.to_string(), last, concurrency));
        }
    }
    let running = sqlx::query_as::<_, (String, String, i64)>(
        "SELECT worker, kind, count(*) FROM tasks WHERE status = 'running' AND worker IS NOT NULL \
         GROUP BY worker, kind",
    )
    .fetch_all(&state.pool)
    .await?;
    let mut by_worker: HashMap<String, serde_json::Map<String, serde_json::Value>> = HashMap::new();
    for (worker, kind, n) in running {
        by_worker.entry(worker).or_default().insert(kind, json!(n));
    }
    let mut data = Vec::new();
    for (instance, queues) in seen {
        let last = queues.iter().map(|q| q.1).max().unwrap_or(0);
        let kinds = by_worker.remove(&instance).unwrap_or_default();
        let total: i64 = kinds.values().filter_map(|v| v.as_i64()).sum();
        data.push(json!({
            "worker": instance,
            "alive": now - last <= ALIVE_WITHIN_SECONDS,
            "lastSeenAt": chrono::DateTime::from_timestamp(last, 0),
            "queues": queues.iter().map(|(q, t, c)| json!({
                "queue": q, "lastSeenAt": chrono::DateTime::from_timestamp(*t, 0),
                "concurrency": c,
            })).collect::<Vec<_>>(),
            "running": total,
            "runningByKind": kinds,
        }));
    }
    // Tasks held by a worker with no registration left (its leases will expire).
    for (worker, kinds) in by_worker {
        let total: i64 = kinds.values().filter_map(|v| v.as_i64()).sum();
        data.push(json!({
            "worker": worker, "alive": false, "lastSeenAt": null, "queues": [],
            "running": total, "runningByKind": kinds,
        }));
    }
    Ok(data)
}

#[utoipa::path(
    post,
    path = "/admin/ping",
    tag = "operators",
    summary = "End-to-end probe: a maintenance worker measures its round trips to Postgres and Redis (task `ping`; admin)",
    description = "Creates a `ping` task (no body). Its result, at `GET /tasks/{id}`, is `{pong, attempt, postgresMs, redisMs, at}`: the queue was relayed and consumed, and the worker reaches Postgres and Redis.",
    params(IdempotencyKey),
    responses(
        TaskAccepted,
        IdempotencyConflict,
        Invalid,
        Unauthorized,
        TooLarge,
        PostgresDown,
        NotAdmin
    )
)]
/// `POST /admin/ping`: an end-to-end probe. The task's result (`GET /tasks/{id}`) says that a
/// maintenance worker took it and how long its round trips to Postgres and Redis took. Like
/// the KPI refresh, it takes no body.
pub async fn ping(
    State(state): State<AppState>,
    principal: Principal,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    require_admin(&principal)?;
    super::enqueue_on_request(
        &state,
        &principal,
        &headers,
        crate::enqueue_table::PING.kind,
    )
    .await
}

fn known_queue(queue: &str) -> Result<(), ApiError> {
    if jobs::queues::ALL.contains(&queue) {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "no queue {queue:?} (known: {})",
            jobs::queues::ALL.join(", ")
        )))
    }
}

/// `POST /admin/queues/{queue}/pause`: the queue keeps accepting tasks; workers neither
/// relay nor fetch its work until it is resumed (within `QUEUE_PAUSE_POLL_MS`). The state
/// survives restarts.
#[utoipa::path(post, path = "/admin/queues/{queue}/pause", tag = "operators",
    summary = "Pause a queue: it accepts tasks, none starts (admin)",
    params(QueueName),
    responses((status = 200, description = "`{queue, paused: true, changed}`", body = inline(QueuePaused)),
        (status = 404, description = "No such queue", body = ErrorBody),
        Unauthorized, NotAdmin, PostgresDown, TooLarge))]
pub async fn pause_queue(
    State(state): State<AppState>,
    principal: Principal,
    Path(queue): Path<String>,
) -> Result<Response, ApiError> {
    require_admin(&principal)?;
    known_queue(&queue)?;
    let changed =
        engine::transport::pause::pause(&state.pool, &queue, &principal.requester).await?;
    tracing::info!(queue = %queue, operator = %principal.requester, changed, "queue paused");
    Ok(
        Json(json!({ "queue": queue, "paused": true, "changed": changed,
                    "requestId": request_id::current() }))
        .into_response(),
    )
}

/// `POST /admin/queues/{queue}/resume`.
#[utoipa::path(post, path = "/admin/queues/{queue}/resume", tag = "operators",
    summary = "Resume a paused queue (admin)",
    params(QueueName),
    responses((status = 200, description = "`{queue, paused: false, changed}`", body = inline(QueuePaused)),
        (status = 404, description = "No such queue", body = ErrorBody),
        Unauthorized, NotAdmin, PostgresDown, TooLarge))]
pub async fn resume_queue(
    State(state): State<AppState>,
    principal: Principal,
    Path(queue): Path<String>,
) -> Result<Response, ApiError> {
    require_admin(&principal)?;
    known_queue(&queue)?;
    let changed = engine::transport::pause::resume(&state.pool, &queue).await?;
    tracing::info!(queue = %queue, operator = %principal.requester, changed, "queue resumed");
    Ok(
        Json(json!({ "queue": queue, "paused": false, "changed": changed,
                    "requestId": request_id::current() }))
        .into_response(),
    )
}
