//! Payments (seeds/001 "Pagos", issue 12): intents created at a provider, and the provider's
//! webhooks, verified on the raw body and applied to the `payments` row exactly once.
//!
//! Each provider is a module with the same three functions, so the kinds and the api stay
//! provider-agnostic:
//! - `create_intent(&Http, &config, &IntentRequest) -> Result<CreatedIntent, ProviderError>`
//! - `verify(&WebhookRequest, &config, now) -> Result<(), WebhookError>` (raw body, headers)
//! - `parse_event(&[u8]) -> Result<ParsedEvent, WebhookError>` (after `verify` only)
//!
//! `mock` is the provider of development and of the seed's smoke call.

pub mod conekta;
pub mod config;
pub mod mock;
pub mod store;
pub mod stripe;
pub mod wompi;

use std::{collections::HashMap, time::Duration};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// The providers a payment can go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Stripe,
    Conekta,
    Wompi,
    Mock,
}

impl Provider {
    pub const ALL: [Provider; 4] = [Self::Stripe, Self::Conekta, Self::Wompi, Self::Mock];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stripe => "stripe",
            Self::Conekta => "conekta",
            Self::Wompi => "wompi",
            Self::Mock => "mock",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// A payment's status. Webhooks arrive repeated and out of order, so a payment only moves
/// forward in [`PaymentStatus::rank`]: a late `processing` never overwrites `succeeded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Created at the provider; the customer has not paid yet.
    Pending,
    /// The customer acted; the provider is confirming (a cash payment, a bank transfer).
    Processing,
    Succeeded,
    Failed,
    Canceled,
    Refunded,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Processing => "processing",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
            Self::Refunded => "refunded",
        }
    }

    /// Order of the forward-only moves: a status replaces another only when its rank is
    /// higher. `failed` and `canceled` end a payment that did not succeed; `refunded` comes
    /// only after `succeeded`.
    pub fn rank(self) -> i16 {
        match self {
            Self::Pending => 0,
            Self::Processing => 1,
            Self::Failed | Self::Canceled => 2,
            Self::Succeeded => 3,
            Self::Refunded => 4,
        }
    }
}

/// What creating an intent needs. Amounts are in the currency's minor units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IntentRequest {
    /// Our payment id: also the provider-side reference (metadata) and the idempotency key
    /// passed to providers that take one, so a retried task never creates a second intent.
    pub payment_id: Uuid,
    pub amount_cents: i64,
    /// Upper-case ISO 4217.
    pub currency: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub metadata: Value,
}

/// An intent as the provider created it.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedIntent {
    /// The provider's id of the intent/order/transaction (`pi_…`, `ord_…`).
    pub provider_ref: String,
    pub status: PaymentStatus,
    /// What a client needs to pay (Stripe: `{clientSecret}`; Conekta/Wompi: checkout or
    /// reference data; mock: `{checkoutUrl}`).
    pub client: Value,
    /// The provider's object as it answered.
    pub raw: Value,
}

/// Why a provider call did not succeed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    /// The provider refused the request (4xx): retrying the same request cannot help.
    #[error("{code}: {message}")]
    Refused { code: String, message: String },
    /// Not now (network, 5xx, 429, 409, `Stripe-Should-Retry: true`); `retry_after` is the
    /// provider's own hint when it sent one.
    #[error("{code}: {message}")]
    Unavailable {
        code: String,
        message: String,
        retry_after: Option<Duration>,
    },
}

/// A provider's error answer: "not now" (with its `Retry-After`) when `retry`, else a
/// refusal that retrying cannot change.
pub(crate) fn provider_error(
    retry: bool,
    code: String,
    message: String,
    headers: &reqwest::header::HeaderMap,
) -> ProviderError {
    if retry {
        unavailable(&code, message, retry_after(headers, chrono::Utc::now()))
    } else {
        ProviderError::Refused { code, message }
    }
}

/// Sends one provider call: its JSON answer when it succeeded, else the provider's error as
/// `on_error` reads it from the status, headers and body. A network failure is "not now".
pub(crate) async fn exchange(
    request: reqwest::RequestBuilder,
    on_error: fn(reqwest::StatusCode, &reqwest::header::HeaderMap, &Value) -> ProviderError,
) -> Result<Value, ProviderError> {
    let response = request
        .send()
        .await
        .map_err(|e| unavailable("network", e.to_string(), None))?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .bytes()
        .await
        .map_err(|e| unavailable("network", e.to_string(), None))?;
    let raw: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if status.is_success() {
        Ok(raw)
    } else {
        Err(on_error(status, &headers, &raw))
    }
}

/// A provider's answer that says "not now".
pub(crate) fn unavailable(
    code: &str,
    message: String,
    retry_after: Option<Duration>,
) -> ProviderError {
    ProviderError::Unavailable {
        code: code.to_string(),
        message,
        retry_after,
    }
}

/// A provider's `Retry-After`, as seconds or as an HTTP date.
pub(crate) fn retry_after(
    headers: &reqwest::header::HeaderMap,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Duration> {
    let value = headers.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&chrono::Utc) - now)
            .to_std()
            .unwrap_or_default(),
    )
}

/// A webhook delivery as received: the exact body bytes and the headers (names lower-case).
#[derive(Debug, Clone)]
pub struct WebhookRequest<'a> {
    pub body: &'a [u8],
    pub headers: &'a HashMap<String, String>,
}

impl WebhookRequest<'_> {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// Why a webhook delivery is refused (always before anything is parsed or stored).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("the {0} header is missing")]
    MissingSignature(&'static str),
    #[error("the signature does not match")]
    BadSignature,
    #[error("the signature's timestamp is outside the accepted window")]
    Stale,
    /// The provider's webhook secret is not configured: refused, never accepted unsigned.
    #[error("webhooks of {0} are not configured on this server")]
    NotConfigured(&'static str),
    #[error("the event cannot be read: {0}")]
    Malformed(String),
}

/// A verified event, reduced to what moves a payment.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedEvent {
    /// The provider's event id (`evt_…`); deliveries of the same event share it.
    pub event_id: String,
    /// The event's type as the provider names it (`payment_intent.succeeded`, `order.paid`).
    pub kind: String,
    /// The id of the intent/order/transaction the event is about (our `provider_ref`).
    pub provider_ref: String,
    /// The status the event reports; `None` for events that move no payment (a ping).
    pub status: Option<PaymentStatus>,
    pub amount_cents: Option<i64>,
    pub raw: Value,
}

/// Decimal places of `currency`'s minor unit, and the step amounts in minor units must be a
/// multiple of (Stripe's tables, the strictest of our providers).
pub use stripe::{minor_unit_exponent, minor_unit_step};

/// Providers this build can talk to. The others are refused by the api with a 400 naming
/// `provider`, never silently turned into another provider.
pub fn available(provider: Provider) -> bool {
    // Every provider has its module; kept as the one place a future one is switched on.
    Provider::ALL.contains(&provider)
}

/// Creates an intent at `provider`. A provider without its API key runs in mock mode, said
/// once per process in the logs (`payments_provider_mock_mode`).
pub async fn create_intent(
    provider: Provider,
    http: &reqwest::Client,
    cfg: &config::PaymentsConfig,
    req: &IntentRequest,
) -> Result<CreatedIntent, ProviderError> {
    match provider {
        Provider::Stripe if cfg.stripe_secret_key.is_some() => {
            stripe::create_intent(http, cfg, req).await
        }
        Provider::Conekta if cfg.conekta_api_key.is_some() => {
            conekta::create_intent(http, cfg, req).await
        }
        Provider::Wompi if cfg.wompi_private_key.is_some() => {
            wompi::create_intent(http, cfg, req).await
        }
        Provider::Mock => mock::create_intent(req),
        other => {
            mock_mode(other);
            mock::create_intent(req)
        }
    }
}

/// Logs once per provider that it runs in mock mode.
fn mock_mode(provider: Provider) {
    static SAID: std::sync::Mutex<Vec<Provider>> = std::sync::Mutex::new(Vec::new());
    if let Ok(mut said) = SAID.lock() {
        if !said.contains(&provider) {
            said.push(provider);
            tracing::warn!(
                provider = provider.as_str(),
                "payments_provider_mock_mode: no API key configured; intents are created in mock mode"
            );
        }
    }
}

/// Verifies a webhook delivery of `provider` on its raw body.
pub fn verify(
    provider: Provider,
    req: &WebhookRequest<'_>,
    cfg: &config::PaymentsConfig,
) -> Result<(), WebhookError> {
    match provider {
        Provider::Mock => mock::verify(req, cfg),
        Provider::Stripe => stripe::verify(req, cfg, chrono::Utc::now()),
        Provider::Conekta => conekta::verify(req, cfg, chrono::Utc::now()),
        Provider::Wompi => wompi::verify(req, cfg, chrono::Utc::now()),
    }
}

/// Reads a verified event of `provider`.
pub fn parse_event(provider: Provider, body: &[u8]) -> Result<ParsedEvent, WebhookError> {
    match provider {
        Provider::Mock => mock::parse_event(body),
        Provider::Stripe => stripe::parse_event(body),
        Provider::Conekta => conekta::parse_event(body),
        Provider::Wompi => wompi::parse_event(body),
    }
}
