//! Payments (seeds/001 "Pagos", issue 12): intents, provider webhooks verified on the raw
//! body, and the payment as clients read it.

use std::collections::HashMap;

use axum::{
    body::Body,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use engine::enqueue::{Enqueued, Request};
use jobs::{
    kinds::{
        assignment::id_problem, payment::MAX_AMOUNT_CENTS, payment_intent::IntentParams,
        payment_webhook::WebhookParams,
    },
    payments::{self, store, Provider, WebhookError, WebhookRequest},
};
use serde_json::json;
use uuid::Uuid;

use super::director::{currency_problem, MAX_METADATA_BYTES};
use crate::openapi::{
    bodies,
    params::{IdempotencyKey, PaymentId, PaymentProvider},
    replies::{PaymentEventReceipt, PaymentView},
    responses::*,
};
use crate::{auth::Principal, body::JsonObject, error::ApiError, request_id, AppState};

/// Longest `description` of an intent.
pub const MAX_DESCRIPTION_CHARS: usize = 500;
/// The requester of webhook tasks (they are not any client's).
pub const WEBHOOK_REQUESTER: &str = "payments-webhook";

fn provider_problem(state: &AppState, provider: Provider) -> Option<String> {
    if !payments::available(provider) {
        let available: Vec<&str> = Provider::ALL
            .into_iter()
            .filter(|p| payments::available(*p))
            .map(Provider::as_str)
            .collect();
        return Some(format!(
            "{} is not available on this server (available: {})",
            provider.as_str(),
            available.join(", ")
        ));
    }
    (provider == Provider::Mock && state.config.core.environment.is_production())
        .then(|| "mock payments are refused in production".to_string())
}

/// `POST /payments/intent` `{amount | amountCents, currency?, provider?, organizerId?,
/// description?, metadata?}` → 202 with a `payment_intent` task, whose result carries the
/// payment id and what a client needs to pay.
#[utoipa::path(post, path = "/payments/intent", tag = "payments",
    summary = "Create a payment intent at a provider (task `payment_intent`)",
    params(IdempotencyKey), request_body = bodies::IntentRequest,
    responses(TaskAccepted, IdempotencyConflict, Invalid, Unauthorized, TooLarge, NotJson, PostgresDown))]
pub async fn intent(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    mut body: JsonObject,
) -> Result<Response, ApiError> {
    let currency = body
        .optional_str("currency", currency_problem)
        .map(|c| c.to_ascii_uppercase())
        .unwrap_or_else(|| state.config.core.default_currency.clone());
    // `amount` is in major units with 2 decimals; a currency with another minor unit (none:
    // JPY; thousandths: KWD) is never converted by guess: its amount goes in amountCents.
    let exponent = payments::minor_unit_exponent(&currency);
    let cents = match (body.has("amount"), body.has("amountCents")) {
        (true, false) if exponent != 2 => {
            body.optional_value("amountCents");
            body.fail(
                "amount",
                format!(
                    "{currency} amounts have {exponent} decimals: send amountCents, in its minor units"
                ),
            );
            None
        }
        (true, false) => {
            body.optional_value("amountCents");
            body.required_money("amount", MAX_AMOUNT_CENTS)
        }
        (false, true) => {
            body.optional_value("amount");
            body.required_int("amountCents", 1, MAX_AMOUNT_CENTS)
        }
        (true, true) => {
            body.fail("amount", "give amount or amountCents, not both");
            None
        }
        (false, false) => {
            body.fail("amount", "is required (or amountCents)");
            None
        }
    };
    if cents == Some(0) {
        body.fail("amount", "must be > 0");
    }
    let step = payments::minor_unit_step(&currency);
    if cents.is_some_and(|c| c % step != 0) {
        body.fail(
            "amountCents",
            format!("{currency} amounts must be a multiple of {step} minor units"),
        );
    }
    let provider = match body.optional_str("provider", |p| {
        Provider::parse(p)
            .is_none()
            .then_some("must be one of stripe, conekta, wompi, mock")
    }) {
        Some(p) => Provider::parse(&p),
        None => Some(state.config.core.payments.default_provider),
    };
    if let Some(problem) = provider.and_then(|p| provider_problem(&state, p)) {
        body.fail("provider", &problem);
    }
    let organizer_id = body.optional_str("organizerId", id_problem);
    let description = body.optional_str("description", |d| {
        (d.is_empty() || d.chars().count() > MAX_DESCRIPTION_CHARS)
            .then_some("must be 1 to 500 characters")
    });
    let metadata = body.optional_object("metadata", MAX_METADATA_BYTES);
    let run_at = body.optional_start("runAt");
    body.finish()?;
    let (Some(amount_cents), Some(provider)) = (cents, provider) else {
        return Err(ApiError::validation(Default::default()));
    };
    let params = serde_json::to_value(IntentParams {
        provider,
        amount_cents,
        currency,
        organizer_id,
        description,
        metadata: metadata.unwrap_or_else(|| json!({})),
    })
    .map_err(|e| ApiError::internal("encoder", e))?;
    super::enqueue(
        &state,
        &principal,
        &headers,
        crate::enqueue_table::PAYMENT_INTENT.kind,
        params,
        run_at,
    )
    .await
}

/// The provider a delivery to `POST /payments/webhook` comes from, by its signature header.
fn provider_of(headers: &HeaderMap) -> Option<Provider> {
    let has = |name: &str| headers.contains_key(name);
    if has("stripe-signature") {
        Some(Provider::Stripe)
    } else if has("x-event-checksum") {
        Some(Provider::Wompi)
    } else if has("digest") {
        Some(Provider::Conekta)
    } else if has(payments::mock::SIGNATURE_HEADER) {
        Some(Provider::Mock)
    } else {
        None
    }
}

/// `POST /payments/webhook`: like `/payments/webhook/{provider}`, the provider recognised by
/// its signature header (`Stripe-Signature`, `X-Event-Checksum`, `DIGEST`, `X-Mock-Signature`).
#[utoipa::path(post, path = "/payments/webhook", tag = "payments",
    summary = "A payment provider's webhook, recognised by its signature header",
    request_body(content = String, description = "the provider's event, verified on these exact bytes", content_type = "application/json"),
    responses(
        (status = 200, description = "Verified and stored; a `payment_webhook` task applies it", body = PaymentEventReceipt),
        Invalid,
        (status = 401, description = "Missing or bad signature, or the provider's secret is not configured", body = ErrorBody),
        PostgresDown, TooLarge))]
pub async fn webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Some(provider) = provider_of(&headers) else {
        return Err(ApiError::unauthorized(
            "no payment provider signature header (Stripe-Signature, X-Event-Checksum, DIGEST, X-Mock-Signature)",
        ));
    };
    receive(&state, provider, &headers, body).await
}

/// `POST /payments/webhook/{provider}`: verifies the signature on the raw body, stores the
/// event (unique per provider and event id) with its `payment_webhook` task in one
/// transaction, then answers 200. A redelivered event answers 200 and is applied once.
#[utoipa::path(post, path = "/payments/webhook/{provider}", tag = "payments",
    summary = "A payment provider's webhook",
    params(PaymentProvider),
    request_body(content = String, description = "the provider's event, verified on these exact bytes", content_type = "application/json"),
    responses(
        (status = 200, description = "Verified and stored; a `payment_webhook` task applies it", body = PaymentEventReceipt),
        Invalid,
        (status = 401, description = "Missing or bad signature, or the provider's secret is not configured", body = ErrorBody),
        PostgresDown, TooLarge))]
pub async fn webhook_of(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Some(provider) = Provider::parse(&provider) else {
        return Err(ApiError::field(
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "provider",
            "must be one of stripe, conekta, wompi, mock",
        ));
    };
    receive(&state, provider, &headers, body).await
}

async fn receive(
    state: &AppState,
    provider: Provider,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = super::whatsapp::read_body(state, headers, body).await?;
    if provider == Provider::Mock && state.config.core.environment.is_production() {
        return Err(ApiError::unauthorized(
            "mock payment webhooks are refused in production",
        ));
    }
    let header_map: HashMap<String, String> = headers
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.as_str().to_ascii_lowercase(),
                v.to_str().ok()?.to_string(),
            ))
        })
        .collect();
    let delivery = WebhookRequest {
        body: &body,
        headers: &header_map,
    };
    // Nothing is parsed or stored before the signature holds. Conekta's is optional outside
    // production: its events only count after the order is re-read from its API.
    let cfg = &state.config.core.payments;
    let unsigned_conekta = provider == Provider::Conekta
        && cfg.conekta_webhook_public_key.is_none()
        && !state.config.core.environment.is_production();
    if !unsigned_conekta {
        payments::verify(provider, &delivery, cfg).map_err(|e| match e {
            WebhookError::Malformed(m) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_event", m)
            }
            other => ApiError::unauthorized(&other.to_string()),
        })?;
    }
    let event = payments::parse_event(provider, &body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_event", e.to_string()))?;
    let params = serde_json::to_value(WebhookParams {
        provider,
        event_id: event.event_id.clone(),
    })
    .map_err(|e| ApiError::internal("encoder", e))?;
    let key = format!("payment-event:{}:{}", provider.as_str(), event.event_id);
    let request_id = request_id::current();
    let mut tx = state.pool.begin().await?;
    let new = store::store_event(&mut tx, provider, &event, &body).await?;
    let (outcome, will_push) = state
        .enqueuer
        .enqueue_in(
            &mut tx,
            Request {
                kind: crate::enqueue_table::PAYMENT_WEBHOOK.kind,
                params,
                requester: WEBHOOK_REQUESTER,
                idempotency_key: Some(&key),
                request_id: Some(&request_id),
                run_at: None,
            },
        )
        .await?;
    tx.commit().await?;
    let task = match outcome {
        Enqueued::Created(rec) => {
            state.enqueuer.push_created(&rec, will_push).await;
            rec.id
        }
        Enqueued::Replayed(rec) | Enqueued::Conflict(rec) => rec.id,
    };
    Ok((
        StatusCode::OK,
        Json(json!({
            "received": true,
            "provider": provider.as_str(),
            "eventId": event.event_id,
            "taskId": task,
            "duplicate": !new,
            "requestId": request_id,
        })),
    )
        .into_response())
}

/// `GET /payments/{id}`: the payment with the events applied to it; a payment is its
/// requester's (an admin sees every one).
#[utoipa::path(get, path = "/payments/{id}", tag = "payments",
    summary = "A payment and its status history",
    params(PaymentId),
    responses(
        (status = 200, description = "The payment", body = PaymentView),
        Unauthorized, NoSuchPayment, PostgresDown, TooLarge))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::not_found(format!("no payment with id {raw:?}"));
    let id = Uuid::parse_str(&raw).map_err(|_| not_found())?;
    let scope = (!principal.admin).then_some(principal.requester.as_str());
    let Some(payment) = store::get(&state.pool, id, scope).await? else {
        return Err(not_found());
    };
    let history = store::history(&state.pool, id).await?;
    let mut view = serde_json::to_value(&payment).map_err(|e| ApiError::internal("encoder", e))?;
    view["history"] = json!(history);
    view["requestId"] = json!(request_id::current());
    Ok(Json(view).into_response())
}
