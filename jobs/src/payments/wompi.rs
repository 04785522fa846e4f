//! The Wompi provider (Colombia): intents are single-use payment links created with
//! `POST {wompi_api_url}/payment_links`, and events are verified with Wompi's events checksum
//! (SHA-256 of the listed property values, the timestamp and the events secret).
//!
//! Why a payment link and not `POST /transactions`: a transaction needs the payer's payment
//! method (a card token, a PSE bank, a Nequi phone), the acceptance token the payer agreed to
//! and an integrity signature made with a secret we do not hold; none of that exists when our
//! task runs. A payment link only needs the amount and the private key, and gives a checkout
//! URL the client sends the payer to, which is what the other providers' intents give.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::{header::HeaderMap, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{
    config::PaymentsConfig, provider_error, CreatedIntent, IntentRequest, ParsedEvent,
    PaymentStatus, ProviderError, WebhookError, WebhookRequest,
};

/// The header Wompi repeats the checksum in (lower-case: `WebhookRequest` keys are).
pub const CHECKSUM_HEADER: &str = "x-event-checksum";

/// Where Wompi's hosted checkout serves a payment link (`/l/{id}`), sandbox links included
/// (their ids start with `test_`).
pub const CHECKOUT_URL: &str = "https://checkout.wompi.co/l/";

/// How old an event's `timestamp` may be. Wompi retries an undelivered event at most 3 times
/// (after 30 min, 3 h and 24 h: 27.5 h after the first attempt). Whether a retry carries a
/// fresh timestamp is not documented, so the window admits the last retry of an event signed
/// once, plus half an hour of slack; anything older is a replay, not a delivery.
pub const MAX_EVENT_AGE: Duration = Duration::from_secs(28 * 3600);

/// How far in the future a `timestamp` may be: clock skew only. A far-future timestamp would
/// keep a captured delivery inside the window for longer.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);

/// `POST {wompi_api_url}/payment_links`, a single-use link for the exact amount, with our
/// payment id as its `sku`.
///
/// Wompi has no idempotency header, and its public API has no way to find a link by `sku`
/// (only `GET /payment_links/{id}`), so nothing can be looked up before creating again. A
/// task retried after a lost answer therefore creates a second link; the first one's id and
/// URL were never stored nor shown to anyone, so nobody can pay it, and a webhook for it
/// would name a link id no payment row has. A 2xx without an id is reported as Refused for
/// that reason: retrying cannot return the same link either.
pub async fn create_intent(
    http: &reqwest::Client,
    cfg: &PaymentsConfig,
    req: &IntentRequest,
) -> Result<CreatedIntent, ProviderError> {
    let url = format!("{}/payment_links", cfg.wompi_api_url.trim_end_matches('/'));
    let request = http
        .post(url)
        .bearer_auth(cfg.wompi_private_key.as_deref().unwrap_or_default())
        .json(&link_body(req))
        .timeout(cfg.provider_timeout);
    created_intent(super::exchange(request, error_from).await?)
}

/// The link's JSON. `name` and `description` are required by Wompi and shown to the payer.
fn link_body(req: &IntentRequest) -> Value {
    let description = req
        .description
        .clone()
        .filter(|d| !d.trim().is_empty())
        .unwrap_or_else(|| "Taquilla".to_string());
    json!({
        "name": description,
        "description": description,
        // One approved payment per link: a link is one of our payments.
        "single_use": true,
        "collect_shipping": false,
        "currency": req.currency.to_ascii_uppercase(),
        "amount_in_cents": req.amount_cents,
        // Ours, for reconciliation in Wompi's dashboard (a uuid: 36 characters).
        "sku": req.payment_id.to_string(),
    })
}

fn created_intent(raw: Value) -> Result<CreatedIntent, ProviderError> {
    let Some(id) = raw["data"]["id"].as_str().filter(|id| !id.is_empty()) else {
        return Err(ProviderError::Refused {
            code: "bad_response".into(),
            message: "Wompi answered 2xx without a payment link id".into(),
        });
    };
    Ok(CreatedIntent {
        provider_ref: id.to_string(),
        status: PaymentStatus::Pending,
        client: json!({
            "checkoutUrl": format!("{CHECKOUT_URL}{id}"),
            "paymentLinkId": id,
        }),
        raw,
    })
}

/// A non-2xx answer: 429 and 5xx are "not now", every other status a refusal carrying
/// Wompi's `error.type` and its messages (a string, or field → list of strings).
fn error_from(status: StatusCode, headers: &HeaderMap, raw: &Value) -> ProviderError {
    let error = &raw["error"];
    let code = error["type"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("http_{}", status.as_u16()));
    let message = error_messages(&error["messages"])
        .or_else(|| error["reason"].as_str().map(str::to_string))
        .unwrap_or_else(|| format!("Wompi answered {status}"));
    let retry = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
    provider_error(retry, code, message, headers)
}

/// `"messages": {"amount_in_cents": ["Debe ser mayor a 0"], …}` → `amount_in_cents: Debe ser
/// mayor a 0; …` (field order as sent).
fn error_messages(messages: &Value) -> Option<String> {
    match messages {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => {
            let texts: Vec<String> = items.iter().filter_map(text_of).collect();
            (!texts.is_empty()).then(|| texts.join("; "))
        }
        Value::Object(fields) => {
            let texts: Vec<String> = fields
                .iter()
                .map(|(field, v)| {
                    let detail = match v {
                        Value::Array(items) => items
                            .iter()
                            .filter_map(text_of)
                            .collect::<Vec<_>>()
                            .join(", "),
                        other => text_of(other).unwrap_or_default(),
                    };
                    format!("{field}: {detail}")
                })
                .collect();
            (!texts.is_empty()).then(|| texts.join("; "))
        }
        _ => None,
    }
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// Checks Wompi's events checksum: the values at each path of `signature.properties` (read
/// under `data`, in the event's order), then `timestamp`, then the events secret, SHA-256 in
/// hex. It must equal `signature.checksum` and, when sent, the `X-Event-Checksum` header (both
/// when both are there: a proxy rewriting either is not trusted). The body is parsed to find
/// the properties; nothing is stored before this returns Ok.
pub fn verify(
    req: &WebhookRequest<'_>,
    cfg: &PaymentsConfig,
    now: DateTime<Utc>,
) -> Result<(), WebhookError> {
    let secret = cfg
        .wompi_events_secret
        .as_deref()
        .ok_or(WebhookError::NotConfigured("wompi"))?;
    let header = req.header(CHECKSUM_HEADER);
    let event: Value =
        serde_json::from_slice(req.body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    let signature = &event["signature"];
    let in_body = signature["checksum"].as_str();
    if header.is_none() && in_body.is_none() {
        return Err(WebhookError::MissingSignature("X-Event-Checksum"));
    }
    let timestamp = event_timestamp(&event["timestamp"]).ok_or(WebhookError::BadSignature)?;
    let properties = signature["properties"]
        .as_array()
        .filter(|p| !p.is_empty())
        .ok_or(WebhookError::BadSignature)?;
    let mut hash = Sha256::new();
    for property in properties {
        let path = property.as_str().ok_or(WebhookError::BadSignature)?;
        let value = value_at(&event["data"], path).ok_or(WebhookError::BadSignature)?;
        hash.update(value.as_bytes());
    }
    hash.update(timestamp.to_string().as_bytes());
    hash.update(secret.as_bytes());
    let expected = hex::encode(hash.finalize());
    let all_match = [header, in_body]
        .into_iter()
        .flatten()
        .all(|given| hex_eq(&expected, given.trim()));
    if !all_match {
        return Err(WebhookError::BadSignature);
    }
    let age = now.timestamp() - timestamp;
    if age > MAX_EVENT_AGE.as_secs() as i64 || -age > MAX_CLOCK_SKEW.as_secs() as i64 {
        return Err(WebhookError::Stale);
    }
    Ok(())
}

/// The event's `timestamp`: unix seconds, a JSON integer (or its decimal string).
fn event_timestamp(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// The text of the scalar at a dotted path (`transaction.amount_in_cents`) under `data`, as
/// Wompi's own examples concatenate it: strings as they are, numbers in decimal. A path that
/// leads nowhere or to an object, array or null cannot have been signed: the event is refused.
fn value_at(data: &Value, path: &str) -> Option<String> {
    let mut at = data;
    for key in path.split('.') {
        at = at.get(key)?;
    }
    match at {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// Case-insensitive hex comparison in constant time for equal lengths (a length differs only
/// for values that are not a SHA-256 hex at all, which reveals nothing about the secret).
fn hex_eq(expected: &str, given: &str) -> bool {
    let (a, b) = (expected.as_bytes(), given.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |diff, (x, y)| {
        diff | (x.to_ascii_lowercase() ^ y.to_ascii_lowercase())
    }) == 0
}

/// Reads a verified `transaction.updated` event. Other events (`nequi_token.updated`,
/// `bancolombia_transfer_token.updated`, payouts) are acknowledged with `status: None`, so
/// Wompi stops redelivering them.
///
/// - `event_id`: Wompi's events carry no id, so it is derived as `{transaction id}:{status}:
///   {timestamp}`: the deliveries of one event share it, and a transaction's next state is a
///   new event. Should a retry carry a new timestamp, it gets a new id; applying it again is
///   harmless because statuses only move forward.
/// - `provider_ref`: the payment link id, the intent's `provider_ref`. Wompi names the
///   transaction's link in `payment_link_id`; when that is null (reported by integrators for
///   link payments), the link id is read from the `reference` Wompi generates for link
///   payments, `{link id}_{unix seconds}_{random}`. Any other reference (a transaction made
///   with our own reference) is taken as it is.
pub fn parse_event(body: &[u8]) -> Result<ParsedEvent, WebhookError> {
    let raw: Value =
        serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    let kind = raw["event"]
        .as_str()
        .filter(|s| !s.is_empty() && s.len() <= 255)
        .map(str::to_string)
        .ok_or_else(|| WebhookError::Malformed("event must be a string".into()))?;
    let timestamp = event_timestamp(&raw["timestamp"])
        .ok_or_else(|| WebhookError::Malformed("timestamp must be unix seconds".into()))?;
    if kind != "transaction.updated" {
        let id = raw["data"]
            .as_object()
            .and_then(|d| d.values().find_map(|o| o["id"].as_str()))
            .unwrap_or_default()
            .to_string();
        return Ok(ParsedEvent {
            event_id: format!("{kind}:{id}:{timestamp}"),
            kind,
            provider_ref: id,
            status: None,
            amount_cents: None,
            raw,
        });
    }
    let transaction = &raw["data"]["transaction"];
    let text = |field: &str| -> Result<String, WebhookError> {
        transaction[field]
            .as_str()
            .filter(|s| !s.is_empty() && s.len() <= 255)
            .map(str::to_string)
            .ok_or_else(|| {
                WebhookError::Malformed(format!(
                    "data.transaction.{field} must be a string of 1 to 255 characters"
                ))
            })
    };
    let id = text("id")?;
    let wompi_status = text("status")?;
    let status = match wompi_status.as_str() {
        "APPROVED" => Some(PaymentStatus::Succeeded),
        // The payer acted and Wompi is waiting on the bank (PSE, Nequi, cash).
        "PENDING" => Some(PaymentStatus::Processing),
        "DECLINED" | "ERROR" => Some(PaymentStatus::Failed),
        "VOIDED" => Some(PaymentStatus::Canceled),
        _ => None,
    };
    let provider_ref = match transaction["payment_link_id"].as_str() {
        Some(link) if !link.is_empty() => link.to_string(),
        _ => link_id_of_reference(&text("reference")?),
    };
    Ok(ParsedEvent {
        event_id: format!("{id}:{wompi_status}:{timestamp}"),
        kind,
        provider_ref,
        status,
        amount_cents: transaction["amount_in_cents"].as_i64(),
        raw,
    })
}

/// `{link id}_{unix seconds}_{random}` → `{link id}` (link ids may hold `_`, as `test_AbC12`);
/// any other reference is returned whole.
fn link_id_of_reference(reference: &str) -> String {
    let mut parts = reference.rsplitn(3, '_');
    let (random, seconds, link) = (parts.next(), parts.next(), parts.next());
    match (random, seconds, link) {
        (Some(random), Some(seconds), Some(link))
            if !random.is_empty()
                && !link.is_empty()
                && seconds.len() >= 9
                && seconds.bytes().all(|b| b.is_ascii_digit()) =>
        {
            link.to_string()
        }
        _ => reference.to_string(),
    }
}

#[cfg(test)]
mod tests;
