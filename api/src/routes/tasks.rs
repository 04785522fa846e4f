//! Following a task: status (with long-poll), result, cancel and an event stream. Mounted
//! at `/tasks/{id}` and, as the seed names them, `/director/reports/tasks/{id}`.

use std::{collections::HashMap, convert::Infallible, time::Duration};

use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Response,
    },
    Json,
};
use chrono::Utc;
use engine::{progress::LiveProgress, store, TaskRecord, TaskStatus};
use serde_json::{json, Value};
use tokio::time::Instant;
use uuid::Uuid;

use super::links;
use crate::openapi::{
    params::{TaskId, Wait},
    responses::*,
    schemas::Task,
};
use crate::{auth::Principal, error::ApiError, request_id, AppState};

/// How often a waiter re-reads Postgres even without a pub/sub wake-up.
const RECHECK: Duration = Duration::from_secs(1);

fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    // An id that cannot exist is reported like one that does not: 404.
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found(format!("no task with id {raw:?}")))
}

fn not_found(id: Uuid) -> ApiError {
    ApiError::not_found(format!("no task with id {id}"))
}

/// When a requester that holds its maximum of waiters may try again.
const RETRY_AFTER_SECONDS: u64 = 5;

/// A place for one more event stream or long-poll of this requester (each one holds a
/// connection and a pub/sub subscription), or the 429 with `Retry-After` that refuses it.
fn admit(state: &AppState, principal: &Principal) -> Result<crate::events::Permit, Box<Response>> {
    state.hub.admit(&principal.requester).ok_or_else(|| {
        let limit = state.hub.limits().per_requester;
        let mut resp = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_waiters",
            format!(
                "at most {limit} event streams and long-polls may be open at once per token; \
                 close one or retry later"
            ),
        )
        .into_response();
        resp.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from(RETRY_AFTER_SECONDS),
        );
        Box::new(resp)
    })
}

/// The JSON view of a task; running tasks show the live percent from Redis when fresher.
/// The status a client sees: a task not yet due (created with `runAt`, `delaySeconds` or
/// `sendAt`) is `scheduled` until its time — Postgres keeps it `pending` with its `run_at`,
/// and Redis never holds it.
pub fn shown_status(rec: &TaskRecord) -> &'static str {
    let status = rec.status();
    // Never started: a task given back to wait (an export waiting for its slot) has started.
    if status == TaskStatus::Pending && rec.started_at.is_none() && rec.run_at > chrono::Utc::now()
    {
        SCHEDULED
    } else {
        status.as_str()
    }
}

/// See [`shown_status`].
pub const SCHEDULED: &str = "scheduled";

pub fn view(rec: &TaskRecord, live: Option<&LiveProgress>) -> Value {
    let status = rec.status();
    let (progress, stage, message) = match live {
        Some(l) if status == TaskStatus::Running && l.progress >= rec.progress => (
            l.progress,
            l.stage.clone().or(rec.stage.clone()),
            l.message.clone(),
        ),
        _ => (rec.progress, rec.stage.clone(), None),
    };
    let mut v = json!({
        "taskId": rec.id,
        "kind": rec.kind,
        "queue": rec.queue,
        "status": shown_status(rec),
        "progress": progress,
        "stage": stage,
        "attempts": rec.attempts,
        "maxAttempts": rec.max_attempts,
        "cancelRequested": rec.cancel_requested,
        "params": rec.params,
        "createdAt": rec.created_at,
        "startedAt": rec.started_at,
        "finishedAt": rec.finished_at,
        "runAt": rec.run_at,
        "expiresAt": rec.expires_at,
        "error": rec.error,
        "errors": rec.errors,
        "links": links(rec.id),
        "requestId": request_id::current(),
    });
    if status == TaskStatus::Completed {
        v["result"] = rec.result.clone().unwrap_or(Value::Null);
    }
    if let Some(m) = message {
        v["message"] = json!(m);
    }
    v
}

async fn live(state: &AppState, rec: &TaskRecord) -> Option<LiveProgress> {
    if rec.status() != TaskStatus::Running {
        return None;
    }
    state.progress.read(rec.id).await.ok().flatten()
}

async fn load(state: &AppState, principal: &Principal, id: Uuid) -> Result<TaskRecord, ApiError> {
    store::get(&state.pool, id, Some(&principal.requester))
        .await?
        .ok_or_else(|| not_found(id))
}

/// What a waiter compares to decide that something changed.
type Fingerprint = (TaskStatus, i32, i16, Option<String>, i64);

fn fingerprint(rec: &TaskRecord, live: Option<&LiveProgress>) -> Fingerprint {
    let progress = live
        .map(|l| l.progress)
        .unwrap_or(rec.progress)
        .max(rec.progress);
    (
        rec.status,
        rec.attempts,
        progress,
        live.and_then(|l| l.stage.clone()).or(rec.stage.clone()),
        rec.updated_at.timestamp_micros(),
    )
}

/// Waits (up to `deadline`) until the task differs from `before`; returns its latest state.
async fn wait_for_change(
    state: &AppState,
    principal: &Principal,
    mut rec: TaskRecord,
    mut live_now: Option<LiveProgress>,
    deadline: Instant,
) -> Result<(TaskRecord, Option<LiveProgress>), ApiError> {
    let before = fingerprint(&rec, live_now.as_ref());
    let mut sub = state.hub.subscribe(rec.id).await;
    loop {
        if rec.status().is_terminal() || fingerprint(&rec, live_now.as_ref()) != before {
            return Ok((rec, live_now));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok((rec, live_now));
        }
        let nap = (deadline - now).min(RECHECK);
        tokio::select! {
            _ = sub.rx.recv() => {}
            _ = tokio::time::sleep(nap) => {}
        }
        rec = load(state, principal, rec.id).await?;
        live_now = live(state, &rec).await;
    }
}

/// `GET /tasks/{id}[?wait=N]`: with `wait`, answers as soon as the task changes (or is
/// finished), at the latest after N seconds.
#[utoipa::path(get, path = "/{id}", tag = "tasks",
    summary = "Task status (long-poll with `wait`)",
    params(TaskId, Wait),
    responses(TaskView, Unauthorized, NoSuchTask, StoreDown,
        (status = 400, description = "wait out of range", body = ErrorBody),
        TooManyWaiters, OutOfScope, TooLarge))]
pub async fn get_task(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let wait = match query.get("wait") {
        None => 0,
        Some(raw) => match raw.trim().parse::<u64>() {
            Ok(n) if n <= state.config.long_poll_max => n,
            _ => {
                return Err(ApiError::field(
                    StatusCode::BAD_REQUEST,
                    "validation_failed",
                    "wait",
                    &format!(
                        "must be a whole number of seconds from 0 to {}",
                        state.config.long_poll_max
                    ),
                ))
            }
        },
    };
    let rec = load(&state, &principal, id).await?;
    let live_now = live(&state, &rec).await;
    let (rec, live_now) = if wait > 0 && !rec.status().is_terminal() {
        let _permit = match admit(&state, &principal) {
            Ok(permit) => permit,
            Err(resp) => return Ok(*resp),
        };
        let deadline = Instant::now() + Duration::from_secs(wait);
        wait_for_change(&state, &principal, rec, live_now, deadline).await?
    } else {
        (rec, live_now)
    };
    Ok(Json(view(&rec, live_now.as_ref())).into_response())
}

/// `GET /tasks/{id}/result`: the result of a completed task, with `taskId` and `requestId`.
#[utoipa::path(get, path = "/{id}/result", tag = "tasks",
    summary = "Result of a completed task",
    params(TaskId),
    responses(
        (status = 200, description = "The result object, plus `taskId` and `requestId` (exports: `{url, filename, format, rows, sizeBytes, expiresAt}`)", body = inline(AnyObject)),
        NoSuchTask,
        (status = 409, description = "Not completed (yet)", body = ErrorBody),
        (status = 410, description = "Expired", body = ErrorBody),
        Unauthorized, StoreDown, OutOfScope, TooLarge))]
pub async fn get_result(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let rec = load(&state, &principal, id).await?;
    let status = rec.status();
    if status.is_terminal() && rec.expires_at.is_some_and(|t| t < Utc::now()) {
        return Err(ApiError::new(
            StatusCode::GONE,
            "task_expired",
            format!("task {id} expired; its result is no longer available"),
        ));
    }
    let detail = |code: &'static str, what: &str| {
        let reason = rec
            .error
            .as_ref()
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        ApiError::new(
            StatusCode::CONFLICT,
            code,
            format!("task {id} {what}{reason}"),
        )
    };
    match status {
        TaskStatus::Completed => {
            let mut body = match rec.result.clone() {
                Some(Value::Object(map)) => Value::Object(map),
                other => json!({ "result": other }),
            };
            body["taskId"] = json!(rec.id);
            body["requestId"] = json!(request_id::current());
            Ok(Json(body).into_response())
        }
        TaskStatus::Failed => Err(detail("task_failed", "failed")),
        TaskStatus::Dead => Err(detail("task_dead", "exhausted its attempts")),
        TaskStatus::Cancelled => Err(detail("task_cancelled", "was cancelled")),
        TaskStatus::Pending | TaskStatus::Running | TaskStatus::Retrying => Err(ApiError::new(
            StatusCode::CONFLICT,
            "result_not_ready",
            format!("task {id} is {status}; poll /tasks/{id} until it completes"),
        )),
    }
}

/// `POST /tasks/{id}/cancel`: 200 when cancelled at once (not started), 202 when the running
/// handler was asked to stop, 409 when already finished.
#[utoipa::path(post, path = "/{id}/cancel", tag = "tasks",
    summary = "Cancel",
    params(TaskId),
    responses(
        (status = 200, description = "Cancelled before it started", body = Task),
        (status = 202, description = "Cancel requested; the running task stops between chunks", body = Task),
        (status = 409, description = "Already finished", body = ErrorBody),
        (status = 404, description = "No such task", body = ErrorBody),
        Unauthorized, StoreDown, OutOfScope, TooLarge))]
pub async fn cancel(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    match engine::actions::cancel(&state.pool, &state.hooks, id, Some(&principal.requester)).await?
    {
        engine::actions::CancelOutcome::Cancelled(rec) => {
            state.notifier.changed(&[id]);
            Ok((StatusCode::OK, Json(view(&rec, None))).into_response())
        }
        engine::actions::CancelOutcome::Requested(rec) => {
            state.notifier.changed(&[id]);
            Ok((StatusCode::ACCEPTED, Json(view(&rec, None))).into_response())
        }
        engine::actions::CancelOutcome::AlreadyFinished(rec) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "task_finished",
            format!("task {id} is already {}; nothing to cancel", rec.status),
        )),
        engine::actions::CancelOutcome::NotFound => Err(not_found(id)),
    }
}

/// `GET /tasks/{id}/events`: Server-Sent Events, one `task` event per change (the task's
/// view as data), ending after the task finishes. The event id is the change's version, so
/// a reconnect with `Last-Event-ID` skips a state the client already has.
#[utoipa::path(get, path = "/{id}/events", tag = "tasks",
    summary = "Server-Sent Events: one `task` event per change; resumable with Last-Event-ID",
    params(TaskId),
    responses(
        (status = 200, description = "text/event-stream", content_type = "text/event-stream", body = String),
        (status = 404, description = "No such task", body = ErrorBody),
        Unauthorized, StoreDown, TooManyWaiters, OutOfScope, TooLarge))]
pub async fn events(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let rec = load(&state, &principal, id).await?;
    let permit = match admit(&state, &principal) {
        Ok(permit) => permit,
        Err(resp) => return Ok(*resp),
    };
    // The stream ends after its lifetime; the client resumes with Last-Event-ID.
    let ends_at = Instant::now() + state.hub.limits().stream_lifetime;
    let last_seen = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok());
    let request_id = request_id::current();
    struct Cursor {
        state: AppState,
        principal: Principal,
        rec: Option<TaskRecord>,
        skip_version: Option<i64>,
        last: Option<Fingerprint>,
        done: bool,
        request_id: String,
        ends_at: Instant,
        _permit: crate::events::Permit,
    }
    let cursor = Cursor {
        state,
        principal,
        rec: Some(rec),
        skip_version: last_seen,
        last: None,
        done: false,
        request_id,
        ends_at,
        _permit: permit,
    };
    let stream = futures::stream::unfold(cursor, move |mut c| async move {
        while !c.done {
            let rec = match c.rec.take() {
                Some(rec) => rec,
                None => load(&c.state, &c.principal, id).await.ok()?,
            };
            let live_now = live(&c.state, &rec).await;
            let fp = fingerprint(&rec, live_now.as_ref());
            let version = rec.updated_at.timestamp_micros();
            let resumed_here = c.skip_version.take() == Some(version) && live_now.is_none();
            if c.last.as_ref() != Some(&fp) && !resumed_here {
                c.last = Some(fp);
                c.done = rec.status().is_terminal();
                let mut data = view(&rec, live_now.as_ref());
                data["requestId"] = json!(c.request_id);
                let event = Event::default()
                    .event("task")
                    .id(version.to_string())
                    .data(data.to_string());
                return Some((Ok::<Event, Infallible>(event), c));
            }
            if rec.status().is_terminal() {
                return None;
            }
            if Instant::now() >= c.ends_at {
                return None;
            }
            let deadline = (Instant::now() + Duration::from_secs(30)).min(c.ends_at);
            let (next, _) = wait_for_change(&c.state, &c.principal, rec, live_now, deadline)
                .await
                .ok()?;
            c.rec = Some(next);
        }
        None
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}
