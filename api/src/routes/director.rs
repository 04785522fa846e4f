//! Director writes (seeds/000): each validated request becomes a task.

use axum::{extract::State, http::HeaderMap, response::Response};
use jobs::kinds::{
    assignment::{self, AssignmentParams, AssignmentType, MAX_PRICE_CENTS, MAX_TICKETS},
    payment::{PaymentParams, MAX_AMOUNT_CENTS},
};

use crate::openapi::{bodies, params::IdempotencyKey, responses::*};
use crate::{auth::Principal, body::JsonObject, error::ApiError, AppState};

/// A currency code: three ASCII letters (ISO 4217), any case.
pub fn currency_problem(c: &str) -> Option<&'static str> {
    (c.len() != 3 || !c.chars().all(|ch| ch.is_ascii_alphabetic()))
        .then_some("must be a 3-letter ISO 4217 code")
}

/// The most JSON text a `metadata` field may hold.
pub const MAX_METADATA_BYTES: usize = 4096;

/// `POST /director/assign` `{organizerId, eventId, type: prepaid|loan, tickets, price,
/// currency?, metadata?}` → 202 with an `assignment` task.
#[utoipa::path(post, path = "/director/assign", tag = "director",
    summary = "Assign tickets to an organizer (task `assignment`)",
    params(IdempotencyKey), request_body = bodies::AssignRequest,
    responses(TaskAccepted, IdempotencyConflict, Invalid, Unauthorized, TooLarge, NotJson, PostgresDown, OutOfScope))]
pub async fn assign(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    mut body: JsonObject,
) -> Result<Response, ApiError> {
    let organizer_id = body.required_str("organizerId", assignment::id_problem);
    let event_id = body.required_str("eventId", assignment::id_problem);
    let kind = body.required_enum("type", &["prepaid", "loan"]);
    let tickets = body.required_int("tickets", 1, MAX_TICKETS);
    let price_cents = body.required_money("price", MAX_PRICE_CENTS);
    let currency = body.optional_str("currency", currency_problem);
    let metadata = body.optional_object("metadata", MAX_METADATA_BYTES);
    let run_at = body.optional_start("runAt");
    body.finish()?;
    let (Some(organizer_id), Some(event_id), Some(kind), Some(tickets), Some(price_cents)) =
        (organizer_id, event_id, kind, tickets, price_cents)
    else {
        // finish() reports every missing or invalid field, so this is unreachable in practice.
        return Err(ApiError::validation(Default::default()));
    };
    let params = AssignmentParams {
        organizer_id,
        event_id,
        assignment_type: AssignmentType::parse(&kind).unwrap_or(AssignmentType::Prepaid),
        tickets: tickets as i32,
        price_cents,
        currency: currency
            .map(|c| c.to_ascii_uppercase())
            .unwrap_or_else(|| state.config.core.default_currency.clone()),
        metadata: metadata.unwrap_or_else(|| serde_json::json!({})),
    };
    let params = serde_json::to_value(params).map_err(|e| ApiError::internal("encoder", e))?;
    super::enqueue(
        &state,
        &principal,
        &headers,
        crate::enqueue_table::ASSIGNMENT.kind,
        params,
        run_at,
    )
    .await
}

/// `POST /director/payments` `{organizerId, amount | amountCents, currency?, metadata?}` →
/// 202 with a `payment` task. `amount` is in major units (at most 2 decimals), `amountCents`
/// an integer; exactly one of them.
#[utoipa::path(post, path = "/director/payments", tag = "director",
    summary = "Record a payment (task `payment`)",
    params(IdempotencyKey), request_body = bodies::PaymentRequest,
    responses(TaskAccepted, IdempotencyConflict, Invalid, Unauthorized, TooLarge, NotJson, PostgresDown, OutOfScope))]
pub async fn payment(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    mut body: JsonObject,
) -> Result<Response, ApiError> {
    let organizer_id = body.required_str("organizerId", assignment::id_problem);
    let cents = match (body.has("amount"), body.has("amountCents")) {
        // The other one may be there as null, which means absent (not an unknown field).
        (true, false) => {
            body.optional_value("amountCents");
            body.required_money("amount", MAX_AMOUNT_CENTS)
        }
        (false, true) => {
            body.optional_value("amount");
            body.required_int("amountCents", 1, MAX_AMOUNT_CENTS)
        }
        (true, true) => {
            body.required_money("amount", MAX_AMOUNT_CENTS);
            body.required_int("amountCents", 1, MAX_AMOUNT_CENTS);
            body.fail("amount", "give either amount or amountCents, not both");
            None
        }
        (false, false) => {
            body.fail("amount", "is required (or amountCents)");
            body.required_money("amount", MAX_AMOUNT_CENTS);
            body.required_int("amountCents", 1, MAX_AMOUNT_CENTS);
            None
        }
    };
    if cents == Some(0) {
        body.fail("amount", "must be > 0");
    }
    let currency = body.optional_str("currency", currency_problem);
    let metadata = body.optional_object("metadata", MAX_METADATA_BYTES);
    let run_at = body.optional_start("runAt");
    body.finish()?;
    let (Some(organizer_id), Some(amount_cents)) = (organizer_id, cents) else {
        return Err(ApiError::validation(Default::default()));
    };
    let params = PaymentParams {
        organizer_id,
        amount_cents,
        currency: currency
            .map(|c| c.to_ascii_uppercase())
            .unwrap_or_else(|| state.config.core.default_currency.clone()),
        metadata: metadata.unwrap_or_else(|| serde_json::json!({})),
    };
    let params = serde_json::to_value(params).map_err(|e| ApiError::internal("encoder", e))?;
    super::enqueue(
        &state,
        &principal,
        &headers,
        crate::enqueue_table::PAYMENT.kind,
        params,
        run_at,
    )
    .await
}
