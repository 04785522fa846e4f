//! Deliveries (seeds/001): one guest (`POST /events/{eventId}/guests/{guestId}/send`) or
//! many (`POST /events/{eventId}/deliveries`). Unknown event or guest → 404, a guest
//! without the channel's contact → 422, both naming what is wrong; the rest is the worker's.

use axum::{
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use engine::enqueue::{Enqueued, Request};
use jobs::{
    deliveries::{self, Channel, MessageKind},
    kinds::assignment::id_problem,
    kinds::delivery::{template_problem, DeliveryParams},
    kinds::delivery_bulk::{BulkParams, MAX_GUEST_IDS},
};
use serde_json::json;
use sqlx::Row;

use crate::openapi::{
    bodies,
    params::{EventPath, GuestPath, IdempotencyKey},
    responses::*,
};
use crate::{auth::Principal, body::JsonObject, error::ApiError, request_id, AppState};

/// A path id, checked like body ids: a malformed one cannot exist, so it is a 404 too.
fn path_id(what: &str, id: &str) -> Result<(), ApiError> {
    match id_problem(id) {
        None => Ok(()),
        Some(problem) => {
            let mut e = ApiError::not_found(format!("{what} {id:?} does not exist ({problem})"));
            e.fields.insert(what.to_string(), problem.to_string());
            Err(e)
        }
    }
}

async fn event_exists(state: &AppState, event_id: &str) -> Result<(), ApiError> {
    let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM events WHERE id = $1")
        .bind(event_id)
        .fetch_optional(&state.pool)
        .await?;
    match found {
        Some(_) => Ok(()),
        None => {
            let mut e = ApiError::not_found(format!("event {event_id:?} does not exist"));
            e.fields.insert("eventId".into(), "not found".into());
            Err(e)
        }
    }
}

/// `channel`, `kind` (default invitation) and `template?`, shared by both routes.
fn message_fields(body: &mut JsonObject) -> (Option<Channel>, MessageKind, Option<String>) {
    let channel = body
        .required_enum("channel", &["whatsapp", "email"])
        .and_then(|c| Channel::parse(&c));
    let kind = match body.has("kind") {
        true => body
            .required_enum("kind", &["invitation", "reminder"])
            .and_then(|k| MessageKind::parse(&k))
            .unwrap_or(MessageKind::Invitation),
        false => MessageKind::Invitation,
    };
    let template = body.optional_str("template", template_problem);
    (channel, kind, template)
}

/// `POST /events/{eventId}/guests/{guestId}/send` `{channel, kind?, template?}` → 202 with
/// a `delivery` task; the delivery row (`deliveryId`, same id) is created with it.
#[utoipa::path(post, path = "/events/{eventId}/guests/{guestId}/send", tag = "deliveries",
    summary = "Send an invitation/reminder (task `delivery`)",
    params(GuestPath, IdempotencyKey), request_body = bodies::SendRequest,
    responses(TaskAccepted, IdempotencyConflict, Invalid, Unauthorized, TooLarge, NotJson, PostgresDown, OutOfScope,
        (status = 404, description = "Unknown event or guest", body = ErrorBody),
        (status = 422, description = "Guest has no phone/e-mail", body = ErrorBody)))]
pub async fn send(
    State(state): State<AppState>,
    Path((event_id, guest_id)): Path<(String, String)>,
    principal: Principal,
    headers: HeaderMap,
    mut body: JsonObject,
) -> Result<Response, ApiError> {
    let (channel, kind, template) = message_fields(&mut body);
    // A reminder the day before the event: not sent before `sendAt`, cancellable until then.
    let run_at = body.optional_start("sendAt");
    body.finish()?;
    let Some(channel) = channel else {
        return Err(ApiError::validation(Default::default()));
    };
    path_id("eventId", &event_id)?;
    path_id("guestId", &guest_id)?;
    event_exists(&state, &event_id).await?;
    let guest = sqlx::query("SELECT email, phone FROM guests WHERE event_id = $1 AND id = $2")
        .bind(&event_id)
        .bind(&guest_id)
        .fetch_optional(&state.pool)
        .await?;
    let Some(guest) = guest else {
        let mut e = ApiError::not_found(format!(
            "guest {guest_id:?} does not exist in event {event_id:?}"
        ));
        e.fields.insert("guestId".into(), "not found".into());
        return Err(e);
    };
    let field = channel.contact_field();
    let contact: Option<String> = guest.try_get(field)?;
    let usable = match channel {
        Channel::Whatsapp => contact
            .as_deref()
            .and_then(deliveries::phone::normalize)
            .is_some(),
        Channel::Email => contact.as_deref().is_some_and(|c| c.contains('@')),
    };
    if !usable {
        return Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "guest_unreachable",
            field,
            &format!("the guest has no usable {field} for {}", channel.as_str()),
        ));
    }

    let params = serde_json::to_value(DeliveryParams {
        event_id: event_id.clone(),
        guest_id: guest_id.clone(),
        channel,
        kind,
        template: template.clone(),
    })
    .map_err(|e| ApiError::unavailable("encoder", e))?;
    let key = super::idempotency_key(&headers)?;
    let request_id = request_id::current();
    let mut tx = state.pool.begin().await?;
    let (outcome, will_push) = state
        .enqueuer
        .enqueue_in(
            &mut tx,
            Request {
                kind: crate::enqueue_table::DELIVERY.kind,
                params,
                requester: &principal.requester,
                idempotency_key: key.as_deref(),
                request_id: Some(&request_id),
                run_at,
            },
        )
        .await?;
    match outcome {
        Enqueued::Created(rec) => {
            // The delivery and its task commit together: neither exists without the other.
            deliveries::store::insert(
                &mut tx,
                rec.id,
                &event_id,
                &guest_id,
                channel,
                kind,
                template.as_deref(),
            )
            .await?;
            tx.commit().await?;
            state.enqueuer.push_created(&rec, will_push).await;
            tracing::info!(task.id = %rec.id, channel = channel.as_str(), requester = %principal.requester, "delivery accepted");
            Ok(super::accepted_with(
                &rec,
                false,
                json!({ "deliveryId": rec.id }),
            ))
        }
        Enqueued::Replayed(rec) => {
            tx.rollback().await?;
            Ok(super::accepted_with(
                &rec,
                true,
                json!({ "deliveryId": rec.id }),
            ))
        }
        Enqueued::Conflict(rec) => {
            tx.rollback().await?;
            Err(ApiError::new(
                StatusCode::CONFLICT,
                "idempotency_conflict",
                format!(
                    "Idempotency-Key was already used for task {} with different parameters",
                    rec.id
                ),
            ))
        }
    }
}

/// `POST /events/{eventId}/deliveries` `{channel, kind?, template?, guestIds? | all: true}`
/// → 202 with one `delivery_bulk` task that fans out and summarizes its children.
#[utoipa::path(post, path = "/events/{eventId}/deliveries", tag = "deliveries",
    summary = "Bulk send (task `delivery_bulk`)",
    params(EventPath, IdempotencyKey), request_body = bodies::BulkRequest,
    responses(TaskAccepted, IdempotencyConflict, Invalid, Unauthorized, TooLarge, NotJson, PostgresDown, OutOfScope,
        (status = 404, description = "Unknown event", body = ErrorBody)))]
pub async fn bulk(
    State(state): State<AppState>,
    Path(event_id): Path<String>,
    principal: Principal,
    headers: HeaderMap,
    mut body: JsonObject,
) -> Result<Response, ApiError> {
    let (channel, kind, template) = message_fields(&mut body);
    let guest_ids = body.optional_str_array("guestIds", MAX_GUEST_IDS, id_problem);
    let all = body.optional_bool("all");
    let choice_ok = matches!(
        (&guest_ids, all),
        (Some(_), None | Some(false)) | (None, Some(true))
    );
    let run_at = body.optional_start("runAt");
    body.finish()?;
    if !choice_ok {
        return Err(ApiError::field(
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "guestIds",
            "give exactly one of guestIds (a list) or all: true",
        ));
    }
    let Some(channel) = channel else {
        return Err(ApiError::validation(Default::default()));
    };
    path_id("eventId", &event_id)?;
    event_exists(&state, &event_id).await?;
    let params = serde_json::to_value(BulkParams {
        event_id,
        channel,
        kind,
        template,
        guest_ids,
    })
    .map_err(|e| ApiError::unavailable("encoder", e))?;
    super::enqueue(
        &state,
        &principal,
        &headers,
        crate::enqueue_table::DELIVERY_BULK.kind,
        params,
        run_at,
    )
    .await
}
