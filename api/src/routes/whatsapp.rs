//! WhatsApp (seeds/001): the 360dialog webhook and the 24 h session window.

use axum::{
    body::{Body, Bytes},
    extract::{Path, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use engine::enqueue::{Enqueued, Request};
use hmac::{Hmac, Mac};
use jobs::{
    deliveries::{phone, store},
    kinds::wa_inbound::{self, InboundParams},
};
use serde_json::json;
use sha2::Sha256;

use crate::openapi::{
    params::PhonePath,
    replies::{WebhookReceipt, WhatsappSession},
    responses::*,
    schemas::StorableObject,
};
use crate::{auth::Principal, error::ApiError, payload_too_large, request_id, AppState};

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

/// Whether `header` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under `app_secret`, as
/// Meta signs its webhooks. `verify_slice` compares in constant time.
fn meta_signature_ok(app_secret: &str, header: &[u8], body: &[u8]) -> bool {
    let Some(hex_sig) = header.strip_prefix(b"sha256=") else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig.trim_ascii()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// Accepts a call signed by Meta (`X-Hub-Signature-256`, when `WA_APP_SECRET` is set) or
/// carrying the shared secret (`X-Webhook-Secret`, when `WA_WEBHOOK_SECRET` is set). With
/// neither configured only development accepts unsigned calls.
fn check_signature(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    let core = &state.config.core;
    let (app_secret, shared) = (
        core.deliveries.wa_app_secret.as_deref(),
        core.deliveries.wa_webhook_secret.as_deref(),
    );
    if app_secret.is_none() && shared.is_none() {
        return if core.environment.is_production() {
            Err(ApiError::unauthorized(
                "webhook calls must be signed; the server has no WA_APP_SECRET or WA_WEBHOOK_SECRET configured",
            ))
        } else {
            Ok(())
        };
    }
    let signed = app_secret.is_some_and(|secret| {
        headers
            .get("x-hub-signature-256")
            .is_some_and(|h| meta_signature_ok(secret, h.as_bytes(), body))
    });
    let shared_ok = shared.is_some_and(|secret| {
        headers
            .get("x-webhook-secret")
            .is_some_and(|h| same_secret(h.as_bytes(), secret.as_bytes()))
    });
    if signed || shared_ok {
        return Ok(());
    }
    let expected = match (app_secret, shared) {
        (Some(_), Some(_)) => "X-Hub-Signature-256 or X-Webhook-Secret",
        (Some(_), None) => "X-Hub-Signature-256",
        _ => "X-Webhook-Secret",
    };
    Err(ApiError::unauthorized(&format!(
        "missing or wrong {expected}"
    )))
}

/// The body, read up to `API_BODY_LIMIT_BYTES` (JSON 413 above, like every route).
pub(crate) async fn read_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Bytes, ApiError> {
    let limit = state.config.body_limit;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(payload_too_large(limit));
    }
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| payload_too_large(limit))
}

/// `POST /wa/webhook`: verifies the signature on the raw bytes, then stores the payload as
/// a `wa_inbound` task and answers 200. The 200 comes only after the task row committed, so
/// nothing acknowledged is lost; if the database is down the provider gets a 503 and
/// retries. A redelivered call (the same provider events) answers 200 with the first call's
/// task instead of creating another.
#[utoipa::path(post, path = "/wa/webhook", tag = "deliveries",
    summary = "360dialog webhook (X-Webhook-Secret when WA_WEBHOOK_SECRET is set)",
    security(("metaSignature" = []), ("webhookSecret" = []), ()),
    request_body = StorableObject,
    responses(
        (status = 200, description = "Stored as a `wa_inbound` task", body = WebhookReceipt),
        Invalid,
        (status = 401, description = "Bad secret", body = ErrorBody),
        PostgresDown, TooLarge))]
pub async fn webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = read_body(&state, &headers, body).await?;
    check_signature(&state, &headers, &body)?;
    // Refused before the task row is written: a payload Postgres cannot store or give back
    // would poison the queue and the listings (body::storable).
    let payload = crate::body::storable_object(&body)?;
    let dedupe_key = wa_inbound::dedupe_key(&payload, &body);
    let params = serde_json::to_value(InboundParams {
        payload,
        received_at: chrono::Utc::now(),
    })
    .map_err(|e| ApiError::unavailable("encoder", e))?;
    let request_id = request_id::current();
    let outcome = state
        .enqueuer
        .enqueue(Request {
            kind: crate::enqueue_table::WA_INBOUND.kind,
            params,
            requester: WEBHOOK_REQUESTER,
            idempotency_key: Some(&dedupe_key),
            request_id: Some(&request_id),
            run_at: None,
        })
        .await?;
    // A replay differs at least in `receivedAt`, so it comes back as a conflict: either way
    // the events are already stored, in the first call's task.
    let (task_id, duplicate) = match outcome {
        Enqueued::Created(rec) => (rec.id, false),
        Enqueued::Replayed(rec) | Enqueued::Conflict(rec) => (rec.id, true),
    };
    Ok((
        StatusCode::OK,
        Json(json!({
            "received": true,
            "taskId": task_id,
            "duplicate": duplicate,
            "requestId": request_id,
        })),
    )
        .into_response())
}

/// `GET /wa/session/{phone}` → `{phone, open, lastInboundAt, expiresAt, requestId}`.
#[utoipa::path(get, path = "/wa/session/{phone}", tag = "deliveries",
    summary = "The guest's 24 h WhatsApp window",
    params(PhonePath),
    responses(
        (status = 200, description = "`{phone, open, lastInboundAt, expiresAt}`", body = WhatsappSession),
        Invalid, Unauthorized, StoreDown, OutOfScope, TooLarge))]
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
