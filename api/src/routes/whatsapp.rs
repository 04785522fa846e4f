//! WhatsApp (seeds/001): the 360dialog webhook and the 24 h session window.

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use jobs::{
    deliveries::{phone, store},
    enqueue::{Enqueued, Request},
    kinds::wa_inbound::InboundParams,
};
use serde_json::json;

use crate::{auth::Principal, error::ApiError, request_id, AppState};

/// The requester of webhook tasks (they are not any client's).
pub const WEBHOOK_REQUESTER: &str = "whatsapp-webhook";

/// Compares without an early exit, so response timing does not reveal the secret.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// `POST /wa/webhook`: checks `X-Webhook-Secret` (when `WA_WEBHOOK_SECRET` is set), then
/// stores the payload as a `wa_inbound` task and answers 200. The 200 comes only after the
/// task row committed, so nothing acknowledged is lost; if the database is down the
/// provider gets a 503 and retries.
pub async fn webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if let Some(secret) = &state.config.core.deliveries.wa_webhook_secret {
        let given = headers
            .get("x-webhook-secret")
            .map(|v| v.as_bytes())
            .unwrap_or(b"");
        if !same_secret(given, secret.as_bytes()) {
            return Err(ApiError::unauthorized("missing or wrong X-Webhook-Secret"));
        }
    }
    // Refused before the task row is written: a payload Postgres cannot store or give back
    // would poison the queue and the listings (body::storable).
    let payload = crate::body::storable_object(&body)?;
    let params = serde_json::to_value(InboundParams {
        payload,
        received_at: chrono::Utc::now(),
    })
    .map_err(|e| ApiError::unavailable("encoder", e))?;
    let request_id = request_id::current();
    let outcome = state
        .enqueuer
        .enqueue(Request {
            spec: &state.kinds.wa_inbound,
            params,
            requester: WEBHOOK_REQUESTER,
            idempotency_key: None,
            request_id: Some(&request_id),
            run_at: None,
        })
        .await?;
    let task_id = match outcome {
        Enqueued::Created(rec) | Enqueued::Replayed(rec) | Enqueued::Conflict(rec) => rec.id,
    };
    Ok((
        StatusCode::OK,
        Json(json!({ "received": true, "taskId": task_id, "requestId": request_id })),
    )
        .into_response())
}

/// `GET /wa/session/{phone}` → `{phone, open, lastInboundAt, expiresAt, requestId}`.
pub async fn session(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    _principal: Principal,
) -> Result<Response, ApiError> {
    let Some(phone) = phone::normalize(&raw) else {
        return Err(ApiError::field(
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "phone",
            "must be an E.164 number: optional '+' and 8 to 15 digits",
        ));
    };
    let window = store::session(&state.pool, &phone).await?;
    let now = chrono::Utc::now();
    let body = json!({
        "phone": phone,
        "open": window.is_some_and(|(_, expires)| expires > now),
        "lastInboundAt": window.map(|w| w.0),
        "expiresAt": window.map(|w| w.1),
        "requestId": request_id::current(),
    });
    Ok(Json(body).into_response())
}
