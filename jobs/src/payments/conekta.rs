//! The Conekta provider (Mexico): orders over Conekta's v2.3 JSON API, and webhooks verified
//! with the `DIGEST` header (an RSA signature of the body) when a public key is configured.
//!
//! Conekta has no idempotency header, so our payment id goes into the order's `metadata` and
//! the order is looked up by it before creating one. A webhook is only a hint: the order is
//! re-read with [`current_order`] before it counts (what Conekta's own WooCommerce plugin does).

use base64::Engine;
use chrono::{DateTime, Utc};
use reqwest::{header::HeaderMap, StatusCode};
use rsa::{
    pkcs1::DecodeRsaPublicKey, pkcs8::DecodePublicKey, sha2::Digest, sha2::Sha256, Pkcs1v15Sign,
    RsaPublicKey,
};
use serde_json::{json, Map, Value};

use super::{
    config::PaymentsConfig, provider_error, unavailable, CreatedIntent, IntentRequest, ParsedEvent,
    PaymentStatus, ProviderError, WebhookError, WebhookRequest,
};

pub const SIGNATURE_HEADER: &str = "digest";

/// The API version is chosen by the `Accept` header; v2.3 is the one the order shapes here
/// follow (conekta/openapi).
pub const ACCEPT: &str = "application/vnd.conekta-v2.3.0+json";

/// Our reference in the order's metadata: the lookup before creating matches on it.
pub const REFERENCE_KEY: &str = "taquilla_payment_id";

/// The listing's page size limit (conekta/openapi: "the maximum value is 250").
const LOOKUP_LIMIT: u32 = 250;

/// Conekta accepts at most 100 metadata values; one is ours.
const MAX_METADATA: usize = 100;

/// `POST {conekta_api_url}/orders` with an OXXO cash charge, after looking the order up by our
/// reference so a retried task never creates a second order.
pub async fn create_intent(
    http: &reqwest::Client,
    cfg: &PaymentsConfig,
    req: &IntentRequest,
) -> Result<CreatedIntent, ProviderError> {
    if let Some(existing) = find_order(http, cfg, &req.payment_id.to_string()).await? {
        return created_intent(existing);
    }
    let raw = send(
        cfg,
        http.post(format!("{}/orders", base(cfg)))
            .json(&order_body(req)),
    )
    .await?;
    created_intent(raw)
}

/// The order our payment `reference` created, if any. Conekta's order listing has no filter
/// by metadata: its only filter is `search` ("general order search, e.g. by mail, reference
/// etc." in conekta/openapi), so the search narrows the list and the match is ours, exact, on
/// `metadata.taquilla_payment_id`. An error here is returned, never taken as "not found": a
/// blind create after a failed lookup is exactly the duplicate this guards against.
async fn find_order(
    http: &reqwest::Client,
    cfg: &PaymentsConfig,
    reference: &str,
) -> Result<Option<Value>, ProviderError> {
    let limit = LOOKUP_LIMIT.to_string();
    let raw = send(
        cfg,
        http.get(format!("{}/orders", base(cfg)))
            .query(&[("search", reference), ("limit", limit.as_str())]),
    )
    .await?;
    let found = raw["data"].as_array().and_then(|orders| {
        orders
            .iter()
            .find(|order| order["metadata"][REFERENCE_KEY].as_str() == Some(reference))
            .cloned()
    });
    Ok(found)
}

/// Re-reads `GET /orders/{order_id}`: its status, its amount in cents and the order as Conekta
/// answered. A webhook only says "look again"; this is what counts.
pub async fn current_order(
    http: &reqwest::Client,
    cfg: &PaymentsConfig,
    order_id: &str,
) -> Result<(PaymentStatus, i64, Value), ProviderError> {
    // An id is a path segment: anything else would address another resource.
    if order_id.is_empty()
        || !order_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(ProviderError::Refused {
            code: "invalid_order_id".into(),
            message: "a Conekta order id is letters, digits, '_' and '-'".into(),
        });
    }
    let raw = send(cfg, http.get(format!("{}/orders/{order_id}", base(cfg)))).await?;
    let Some(amount) = raw["amount"].as_i64() else {
        return Err(unavailable(
            "bad_response",
            "Conekta answered an order without an integer amount".into(),
            None,
        ));
    };
    let status = order_status(raw["payment_status"].as_str().unwrap_or_default());
    Ok((status, amount, raw))
}

fn base(cfg: &PaymentsConfig) -> &str {
    cfg.conekta_api_url.trim_end_matches('/')
}

/// Sends one call with Conekta's version header and the private key as bearer token, and
/// reads the JSON answer or maps the error.
async fn send(
    cfg: &PaymentsConfig,
    request: reqwest::RequestBuilder,
) -> Result<Value, ProviderError> {
    let request = request
        .bearer_auth(cfg.conekta_api_key.as_deref().unwrap_or_default())
        .header("Accept", ACCEPT)
        .header("Accept-Language", "es")
        .timeout(cfg.provider_timeout);
    super::exchange(request, error_from).await
}

/// The order: one line item for the whole amount, a placeholder customer, our reference and
/// the caller's scalar metadata, and an OXXO cash charge.
///
/// Why cash and not `checkout`: a cash charge answers with the reference the customer pays at
/// the store (and its barcode), which the client can show as is; Conekta's hosted checkout
/// needs success/failure URLs this server has no configuration for, and a card charge needs a
/// token made in the customer's browser, which this api never sees.
fn order_body(req: &IntentRequest) -> Value {
    let mut metadata = Map::new();
    if let Value::Object(given) = &req.metadata {
        for (key, value) in given {
            // Conekta's metadata is flat; nested values have no faithful form there.
            if matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_))
                && key != REFERENCE_KEY
                && metadata.len() < MAX_METADATA - 1
            {
                metadata.insert(key.clone(), value.clone());
            }
        }
    }
    // Ours, always, whatever the caller sent under the same key: the lookup depends on it.
    metadata.insert(
        REFERENCE_KEY.into(),
        Value::String(req.payment_id.to_string()),
    );
    let name = req
        .description
        .as_deref()
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .unwrap_or("Pago");
    json!({
        "currency": req.currency.to_ascii_uppercase(),
        // `customer_info` is required and Conekta's schema requires name, email and phone in
        // it. We do not collect them, so a placeholder stands in: an address under the
        // reserved example.com domain and a 10-digit Mexican-format number.
        "customer_info": {
            "name": "Cliente Taquilla",
            "email": "cliente@example.com",
            "phone": "5500000000",
        },
        "line_items": [{
            "name": name,
            "unit_price": req.amount_cents,
            "quantity": 1,
        }],
        "charges": [{
            "payment_method": {"type": "cash"},
            "amount": req.amount_cents,
        }],
        "metadata": metadata,
    })
}

fn created_intent(raw: Value) -> Result<CreatedIntent, ProviderError> {
    let Some(id) = raw["id"].as_str().filter(|id| !id.is_empty()) else {
        // The order may exist at Conekta; the retry's lookup by reference finds it.
        return Err(unavailable(
            "bad_response",
            "Conekta answered 2xx without an order id".into(),
            None,
        ));
    };
    let charge = &raw["charges"]["data"][0];
    let method = &charge["payment_method"];
    let client = json!({
        "orderId": id,
        "reference": method["reference"],
        "barcodeUrl": method["barcode_url"],
        "serviceName": method["service_name"],
        "expiresAt": method["expires_at"],
        "amountCents": raw["amount"],
        "currency": raw["currency"],
    });
    Ok(CreatedIntent {
        provider_ref: id.to_string(),
        status: order_status(raw["payment_status"].as_str().unwrap_or_default()),
        client,
        raw,
    })
}

/// An order's `payment_status` in ours.
fn order_status(status: &str) -> PaymentStatus {
    match status {
        // A partial refund leaves money taken: the payment stays succeeded.
        "paid" | "partially_refunded" => PaymentStatus::Succeeded,
        // Authorised, not captured yet.
        "pre_authorized" => PaymentStatus::Processing,
        "declined" => PaymentStatus::Failed,
        "expired" | "canceled" | "voided" => PaymentStatus::Canceled,
        // A chargeback takes the money back like a refund.
        "refunded" | "charged_back" => PaymentStatus::Refunded,
        // pending_payment, and any status Conekta adds later: nothing moves on it.
        _ => PaymentStatus::Pending,
    }
}

/// A non-2xx answer: 429 and 5xx are "not now" (with `Retry-After`); every other 4xx is a
/// refusal with Conekta's own message (`details[0].message`, its `code`, else its `type`).
fn error_from(status: StatusCode, headers: &HeaderMap, raw: &Value) -> ProviderError {
    let detail = &raw["details"][0];
    let code = detail["code"]
        .as_str()
        .or_else(|| raw["type"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| format!("http_{}", status.as_u16()));
    let message = detail["message"]
        .as_str()
        .or_else(|| detail["debug_message"].as_str())
        .or_else(|| raw["message"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| format!("Conekta answered {status}"));
    let retry = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
    provider_error(retry, code, message, headers)
}

/// Checks the `DIGEST` header: an RSA PKCS#1 v1.5 signature of SHA-256(body) by the private
/// half of the account's webhook key, verified with `CONEKTA_WEBHOOK_PUBLIC_KEY`.
///
/// The header's encoding is not documented where we could read it; base64 is what is accepted
/// (standard alphabet, padding optional). Conekta signs no timestamp, so there is no replay
/// window to check (`now` is unused): replays are absorbed by the event-id idempotency and by
/// re-reading the order.
pub fn verify(
    req: &WebhookRequest<'_>,
    cfg: &PaymentsConfig,
    _now: DateTime<Utc>,
) -> Result<(), WebhookError> {
    let pem = cfg
        .conekta_webhook_public_key
        .as_deref()
        .ok_or(WebhookError::NotConfigured("conekta"))?;
    let key = public_key(pem).ok_or(WebhookError::NotConfigured("conekta"))?;
    let header = req
        .header(SIGNATURE_HEADER)
        .ok_or(WebhookError::MissingSignature("DIGEST"))?;
    let signature = decode_base64(header.trim()).ok_or(WebhookError::BadSignature)?;
    let digest = Sha256::digest(req.body);
    key.verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &signature)
        .map_err(|_| WebhookError::BadSignature)
}

/// The public key in either PEM form (`PUBLIC KEY`, SPKI, or `RSA PUBLIC KEY`, PKCS#1). An
/// environment variable often carries the PEM's newlines as literal `\n`; they are restored.
/// A key that does not parse is treated as no key: webhooks refused, never accepted unsigned.
fn public_key(pem: &str) -> Option<RsaPublicKey> {
    let pem = pem.replace("\\n", "\n");
    let pem = pem.trim();
    RsaPublicKey::from_public_key_pem(pem)
        .or_else(|_| RsaPublicKey::from_pkcs1_pem(pem))
        .ok()
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
    if text.is_empty() {
        return None;
    }
    STANDARD
        .decode(text)
        .or_else(|_| STANDARD_NO_PAD.decode(text))
        .ok()
}

/// Reads a verified event `{id, type, data.object}`. Order events name the order by
/// `data.object.id`, charge events by `data.object.order_id`; the status is a hint that the
/// lead confirms with [`current_order`]. Other types (`webhook_ping`, …) move nothing.
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
    let status = match kind.as_str() {
        "order.paid" | "charge.paid" => Some(PaymentStatus::Succeeded),
        "order.pending_payment" => Some(PaymentStatus::Pending),
        "order.expired" | "order.canceled" => Some(PaymentStatus::Canceled),
        "order.declined" => Some(PaymentStatus::Failed),
        "order.refunded" | "charge.refunded" | "order.charged_back" => {
            Some(PaymentStatus::Refunded)
        }
        _ => None,
    };
    let ref_field = if kind.starts_with("charge.") {
        "order_id"
    } else {
        "id"
    };
    let provider_ref = if status.is_some() {
        if !object.is_object() {
            return Err(WebhookError::Malformed(
                "data.object must be an object".into(),
            ));
        }
        text(&object[ref_field], &format!("data.object.{ref_field}"))?
    } else {
        // Nothing moves: the id is only for the record.
        object[ref_field].as_str().unwrap_or_default().to_string()
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
