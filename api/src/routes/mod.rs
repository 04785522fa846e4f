//! HTTP routes, by area.

pub mod admin;
pub mod deliveries;
pub mod director;
pub mod exports;
pub mod files;
pub mod health;
pub mod metrics;
pub mod openapi;
pub mod payments;
pub mod reports;
pub mod schedules;
pub mod tasks;
pub mod whatsapp;

use axum::{
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use engine::{
    enqueue::{Enqueued, Request},
    KindInfo, TaskRecord,
};
use serde_json::{json, Value};

use crate::{auth::Principal, error::ApiError, request_id, AppState};

/// Links of a task, relative to the api root.
pub fn links(id: uuid::Uuid) -> Value {
    json!({
        "self": format!("/tasks/{id}"),
        "result": format!("/tasks/{id}/result"),
        "cancel": format!("/tasks/{id}/cancel"),
        "events": format!("/tasks/{id}/events"),
    })
}

/// The highest page number a listing accepts.
pub const MAX_PAGE: i64 = 1_000_000;
/// The most rows one page of a listing holds.
pub const MAX_PAGE_SIZE: i64 = 500;
/// The longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// A query parameter as the client wrote it; an empty one (`?to=`, as HTML forms send) is not
/// given. Values are never trimmed, so the server reads exactly what the OpenAPI document
/// describes.
pub(crate) fn query_value<'a>(
    params: &'a std::collections::HashMap<String, String>,
    name: &str,
) -> Option<&'a str> {
    params
        .get(name)
        .map(String::as_str)
        .filter(|s| !s.is_empty())
}

/// The optional `Idempotency-Key` header: 1–255 visible ASCII characters.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(v)
            if (1..=MAX_IDEMPOTENCY_KEY_LEN).contains(&v.len())
                && v.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Ok(Some(v.to_string()))
        }
        _ => Err(ApiError::field(
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "Idempotency-Key",
            "must be 1 to 255 visible ASCII characters",
        )),
    }
}

fn accepted(rec: &TaskRecord, replayed: bool) -> Response {
    accepted_with(rec, replayed, json!({}))
}

/// The 202 of an enqueue, with `extra` fields merged into the body.
pub(crate) fn accepted_with(rec: &TaskRecord, replayed: bool, extra: Value) -> Response {
    let mut body = json!({
        "taskId": rec.id,
        "status": tasks::shown_status(rec),
        "requestId": request_id::current(),
        "links": links(rec.id),
    });
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    let mut resp = (StatusCode::ACCEPTED, Json(body)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/tasks/{}", rec.id)) {
        resp.headers_mut().insert(header::LOCATION, location);
    }
    if replayed {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    resp
}

/// Creates a task of a kind that takes no input (a maintenance run an operator asks for):
/// its params only say where it came from.
pub async fn enqueue_on_request(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    kind: KindInfo,
) -> Result<Response, ApiError> {
    enqueue(
        state,
        principal,
        headers,
        kind,
        json!({ "trigger": "api" }),
        None,
    )
    .await
}

/// Creates a task of `kind` with already validated `params` and answers 202.
pub async fn enqueue(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    kind: KindInfo,
    params: Value,
    run_at: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(headers)?;
    let request_id = request_id::current();
    let outcome = state
        .enqueuer
        .enqueue(Request {
            kind,
            params,
            requester: &principal.requester,
            idempotency_key: key.as_deref(),
            request_id: Some(&request_id),
            run_at,
        })
        .await?;
    answer_enqueued(outcome, principal)
}

/// The answer to an enqueue: 202 for a new task or a replay, 409 for a reused key.
pub(crate) fn answer_enqueued(
    outcome: Enqueued,
    principal: &Principal,
) -> Result<Response, ApiError> {
    match outcome {
        Enqueued::Created(rec) => {
            tracing::info!(task.id = %rec.id, task.kind = %rec.kind, requester = %principal.requester, "task accepted");
            Ok(accepted(&rec, false))
        }
        Enqueued::Replayed(rec) => Ok(accepted(&rec, true)),
        Enqueued::Conflict(rec) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_conflict",
            format!(
                "Idempotency-Key was already used for task {} with different parameters",
                rec.id
            ),
        )),
    }
}
