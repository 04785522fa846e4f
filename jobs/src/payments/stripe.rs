//! The Stripe provider: PaymentIntents created over Stripe's form-encoded v1 API, and webhooks
//! verified with the `Stripe-Signature` scheme (what stripe-node's `Webhooks.ts` and
//! stripe-python's `_webhook.py` do, with the time check always on).

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use reqwest::{header::HeaderMap, StatusCode};
use serde_json::{json, Value};
use sha2::Sha256;

use super::{
    config::PaymentsConfig, provider_error, unavailable, CreatedIntent, IntentRequest, ParsedEvent,
    PaymentStatus, ProviderError, WebhookError, WebhookRequest,
};

pub const SIGNATURE_HEADER: &str = "stripe-signature";

/// Stripe's zero-decimal currencies (its "Supported currencies" docs): `amount` is in whole
/// units, not ×100.
const ZERO_DECIMAL: [&str; 16] = [
    "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV",
    "XAF", "XOF", "XPF",
];

/// Stripe's three-decimal currencies: `amount` in thousandths, last digit 0.
const THREE_DECIMAL: [&str; 5] = ["BHD", "JOD", "KWD", "OMR", "TND"];

/// How many decimals Stripe's `amount` carries for `currency` (ISO 4217, any case): the api
/// refuses an `amount` with more decimals than this before converting to minor units.
pub fn minor_unit_exponent(currency: &str) -> u32 {
    let code = currency.to_ascii_uppercase();
    if ZERO_DECIMAL.contains(&code.as_str()) {
        0
    } else if THREE_DECIMAL.contains(&code.as_str()) {
        3
    } else {
        2
    }
}

/// The step a minor-unit amount must be a multiple of, for Stripe's special cases: the
/// three-decimal currencies need a last digit of 0 (their card partners), and ISK stays
/// two-decimal in the API but only takes whole krónur (multiples of 100) since 2023.
pub fn minor_unit_step(currency: &str) -> i64 {
    let code = currency.to_ascii_uppercase();
    if THREE_DECIMAL.contains(&code.as_str()) {
        10
    } else if code == "ISK" {
        100
    } else {
        1
    }
}

/// `POST {stripe_api_url}/v1/payment_intents`. Our payment id is the `Idempotency-Key`, so a
/// retried task gets Stripe's stored answer for the first attempt, never a second intent.
pub async fn create_intent(
    http: &reqwest::Client,
    cfg: &PaymentsConfig,
    req: &IntentRequest,
) -> Result<CreatedIntent, ProviderError> {
    let url = format!(
        "{}/v1/payment_intents",
        cfg.stripe_api_url.trim_end_matches('/')
    );
    let request = http
        .post(url)
        .bearer_auth(cfg.stripe_secret_key.as_deref().unwrap_or_default())
        .header("Idempotency-Key", req.payment_id.to_string())
        .form(&intent_form(req))
        .timeout(cfg.provider_timeout);
    created_intent(super::exchange(request, error_from).await?)
}

/// The form fields of a PaymentIntent: scalar metadata is passed on as `metadata[k]`, and
/// `metadata[paymentId]` is always ours (a caller's `paymentId` key cannot replace it).
fn intent_form(req: &IntentRequest) -> Vec<(String, String)> {
    let mut form = vec![
        ("amount".to_string(), req.amount_cents.to_string()),
        ("currency".to_string(), req.currency.to_ascii_lowercase()),
    ];
    if let Some(description) = &req.description {
        form.push(("description".into(), description.clone()));
    }
    form.push(("metadata[paymentId]".into(), req.payment_id.to_string()));
    if let Value::Object(metadata) = &req.metadata {
        for (key, value) in metadata {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                // Stripe's metadata holds strings only: nested values have no faithful form.
                Value::Null | Value::Array(_) | Value::Object(_) => continue,
            };
            if key != "paymentId" {
                form.push((format!("metadata[{key}]"), text));
            }
        }
    }
    form
}

fn created_intent(raw: Value) -> Result<CreatedIntent, ProviderError> {
    let Some(id) = raw["id"].as_str().filter(|id| !id.is_empty()) else {
        // The intent may exist at Stripe; retrying with the same Idempotency-Key reads it back.
        return Err(unavailable(
            "bad_response",
            "Stripe answered 2xx without a payment intent id".into(),
            None,
        ));
    };
    Ok(CreatedIntent {
        provider_ref: id.to_string(),
        status: intent_status(raw["status"].as_str().unwrap_or_default()),
        client: json!({ "clientSecret": raw["client_secret"] }),
        raw,
    })
}

/// A PaymentIntent's status in ours. `requires_capture` is authorised money not yet taken.
fn intent_status(status: &str) -> PaymentStatus {
    match status {
        "succeeded" => PaymentStatus::Succeeded,
        "processing" | "requires_capture" => PaymentStatus::Processing,
        "canceled" => PaymentStatus::Canceled,
        // requires_payment_method | requires_confirmation | requires_action, and any new one.
        _ => PaymentStatus::Pending,
    }
}

/// A non-2xx answer. Stripe's own `Stripe-Should-Retry` wins; otherwise what stripe-node
/// retries (409, >= 500) and 429 are "not now", every other 4xx is a refusal.
fn error_from(status: StatusCode, headers: &HeaderMap, raw: &Value) -> ProviderError {
    let error = &raw["error"];
    let code = ["code", "decline_code", "type"]
        .iter()
        .find_map(|field| error[*field].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| format!("http_{}", status.as_u16()));
    let message = error["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("Stripe answered {status}"));
    let should_retry = headers
        .get("stripe-should-retry")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let retry = match should_retry {
        Some("true") => true,
        Some("false") => false,
        _ => {
            status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::CONFLICT
                || status.is_server_error()
        }
    };
    provider_error(retry, code, message, headers)
}

/// Checks `Stripe-Signature: t=…,v1=…[,v1=…]` against the raw body: any `v1` may match (secret
/// rolls send several), other schemes (`v0`) are ignored, and `t` must be within the
/// tolerance of `now` on either side (the SDKs only refuse old ones; a far-future `t` would
/// make a captured delivery replayable for longer).
pub fn verify(
    req: &WebhookRequest<'_>,
    cfg: &PaymentsConfig,
    now: DateTime<Utc>,
) -> Result<(), WebhookError> {
    let secret = cfg
        .stripe_webhook_secret
        .as_deref()
        .ok_or(WebhookError::NotConfigured("stripe"))?;
    let header = req
        .header(SIGNATURE_HEADER)
        .ok_or(WebhookError::MissingSignature("Stripe-Signature"))?;
    let (timestamp, candidates) = parse_signature_header(header)?;
    // The key is the whole `whsec_…` string as bytes: nothing is base64-decoded.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .map_err(|_| WebhookError::BadSignature)?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(req.body);
    // `verify_slice` compares in constant time; a `v1` that is not hex simply does not match.
    let matches = candidates.iter().any(|candidate| {
        hex::decode(candidate).is_ok_and(|given| mac.clone().verify_slice(&given).is_ok())
    });
    if !matches {
        return Err(WebhookError::BadSignature);
    }
    let age = now.timestamp().abs_diff(timestamp);
    if age > cfg.stripe_webhook_tolerance.as_secs() {
        return Err(WebhookError::Stale);
    }
    Ok(())
}

/// `t` (exactly one, decimal seconds) and the `v1` values of the header.
fn parse_signature_header(header: &str) -> Result<(i64, Vec<&str>), WebhookError> {
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for item in header.split(',') {
        let (key, value) = item
            .trim()
            .split_once('=')
            .ok_or(WebhookError::BadSignature)?;
        match key {
            "t" if timestamp.is_none() => {
                timestamp = Some(
                    value
                        .parse::<i64>()
                        .map_err(|_| WebhookError::BadSignature)?,
                )
            }
            // Two timestamps: which one was signed is ambiguous.
            "t" => return Err(WebhookError::BadSignature),
            "v1" => candidates.push(value),
            _ => {}
        }
    }
    match timestamp {
        Some(t) if !candidates.is_empty() => Ok((t, candidates)),
        _ => Err(WebhookError::BadSignature),
    }
}

/// Reads a verified event `{id, type, data.object}`. Types that move no payment are
/// acknowledged with `status: None`, so Stripe stops redelivering them.
pub fn parse_event(body: &[u8]) -> Result<ParsedEvent, WebhookError> {
    let raw: Value =
        serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    let text = |v: &Value, what: &str| -> Result<String, WebhookError> {
        v.as_str()
            .filter(|s| !s.is_empty() && s.len() <= 255)
            .map(str::to_string)
            .ok_or_else(|| {
                WebhookError::Malformed(format!("{what} must be a string of 1 to 255 characters"))
            })
    };
    let event_id = text(&raw["id"], "id")?;
    let kind = text(&raw["type"], "type")?;
    let object = &raw["data"]["object"];
    if !object.is_object() {
        return Err(WebhookError::Malformed(
            "data.object must be an object".into(),
        ));
    }
    let (provider_ref, status) = match kind.as_str() {
        "charge.refunded" => {
            // The charge's intent is our `provider_ref` (an id, or the object when expanded).
            let intent = &object["payment_intent"];
            let intent_id = intent.as_str().or_else(|| intent["id"].as_str());
            // `charge.refunded` also comes for partial refunds: only a full one refunds the
            // payment. A charge without an intent was not made through us.
            let full = object["refunded"].as_bool().unwrap_or(true);
            match intent_id {
                Some(id) => (
                    text(&Value::from(id), "data.object.payment_intent")?,
                    full.then_some(PaymentStatus::Refunded),
                ),
                None => (text(&object["id"], "data.object.id")?, None),
            }
        }
        _ => {
            let status = match kind.as_str() {
                "payment_intent.succeeded" => Some(PaymentStatus::Succeeded),
                "payment_intent.processing" => Some(PaymentStatus::Processing),
                "payment_intent.payment_failed" => Some(PaymentStatus::Failed),
                "payment_intent.canceled" => Some(PaymentStatus::Canceled),
                "payment_intent.requires_action" | "payment_intent.created" => {
                    Some(PaymentStatus::Pending)
                }
                _ => None,
            };
            let provider_ref = if status.is_some() {
                text(&object["id"], "data.object.id")?
            } else {
                // Nothing moves: the id is only for the record.
                object["id"].as_str().unwrap_or_default().to_string()
            };
            (provider_ref, status)
        }
    };
    let amount_cents = object["amount"].as_i64();
    Ok(ParsedEvent {
        event_id,
        kind,
        provider_ref,
        status,
        amount_cents,
        raw,
    })
}

#[cfg(test)]
mod tests;
