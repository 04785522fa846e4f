//! The `mock` provider: development and the seed's smoke call, with no account anywhere.
//! An intent is "created" locally (its reference is derived from our payment id, so a retried
//! task finds the same one); webhooks are JSON events signed with an HMAC-SHA256 of the raw
//! body under `PAYMENTS_MOCK_WEBHOOK_SECRET`, hex, in `X-Mock-Signature` (the api accepts
//! them only in development).
//!
//! Event: `{"id": "evt_…", "type": "payment.succeeded",
//!          "data": {"providerRef": "mock_…", "status": "succeeded", "amountCents": 1000}}`.

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::{
    config::PaymentsConfig, CreatedIntent, IntentRequest, ParsedEvent, PaymentStatus,
    ProviderError, WebhookError, WebhookRequest,
};

pub const SIGNATURE_HEADER: &str = "x-mock-signature";

pub fn create_intent(req: &IntentRequest) -> Result<CreatedIntent, ProviderError> {
    let provider_ref = format!("mock_{}", req.payment_id.simple());
    let raw = json!({
        "id": provider_ref,
        "object": "mock_intent",
        "amountCents": req.amount_cents,
        "currency": req.currency,
        "status": "pending",
        "metadata": req.metadata,
    });
    Ok(CreatedIntent {
        client: json!({ "checkoutUrl": format!("mock://checkout/{provider_ref}") }),
        provider_ref,
        status: PaymentStatus::Pending,
        raw,
    })
}

pub fn verify(req: &WebhookRequest<'_>, cfg: &PaymentsConfig) -> Result<(), WebhookError> {
    let secret = cfg
        .mock_webhook_secret
        .as_deref()
        .ok_or(WebhookError::NotConfigured("mock"))?;
    let given = req
        .header(SIGNATURE_HEADER)
        .ok_or(WebhookError::MissingSignature("X-Mock-Signature"))?;
    let given = hex::decode(given.trim()).map_err(|_| WebhookError::BadSignature)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .map_err(|_| WebhookError::BadSignature)?;
    mac.update(req.body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&given)
        .map_err(|_| WebhookError::BadSignature)
}

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
    let provider_ref = text(&raw["data"]["providerRef"], "data.providerRef")?;
    let status = match raw["data"]["status"].as_str() {
        None => None,
        Some(s) => Some(
            serde_json::from_value::<PaymentStatus>(Value::String(s.into())).map_err(|_| {
                WebhookError::Malformed(format!("data.status {s:?} is not a payment status"))
            })?,
        ),
    };
    let amount_cents = raw["data"]["amountCents"].as_i64();
    Ok(ParsedEvent {
        event_id,
        kind,
        provider_ref,
        status,
        amount_cents,
        raw,
    })
}
