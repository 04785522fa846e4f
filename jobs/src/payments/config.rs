//! `PAYMENTS_PROVIDER` and each provider's credentials, from the environment. A provider
//! without its API credentials runs in mock mode (logged once as
//! `payments_provider_mock_mode`); a provider without its webhook secret has its webhooks
//! refused, never accepted unsigned.

use std::time::Duration;

use super::Provider;
use engine::env::{parsed, var, ConfigError};

pub const DEFAULT_STRIPE_API_URL: &str = "https://api.stripe.com";
pub const DEFAULT_CONEKTA_API_URL: &str = "https://api.conekta.io";
pub const DEFAULT_WOMPI_API_URL: &str = "https://production.wompi.co/v1";

#[derive(Clone)]
pub struct PaymentsConfig {
    /// `PAYMENTS_PROVIDER` (default `mock`): the provider of an intent that names none.
    pub default_provider: Provider,
    /// `STRIPE_SECRET_KEY` (`sk_…`).
    pub stripe_secret_key: Option<String>,
    /// `STRIPE_WEBHOOK_SECRET` (`whsec_…`, used whole as the HMAC key).
    pub stripe_webhook_secret: Option<String>,
    /// `STRIPE_WEBHOOK_TOLERANCE_SECONDS` (default 300): older signatures are refused.
    pub stripe_webhook_tolerance: Duration,
    /// `STRIPE_API_URL`, for test servers.
    pub stripe_api_url: String,
    /// `CONEKTA_API_KEY` (private key).
    pub conekta_api_key: Option<String>,
    /// `CONEKTA_WEBHOOK_PUBLIC_KEY`: PEM of the webhook key's public half (`DIGEST` header).
    pub conekta_webhook_public_key: Option<String>,
    pub conekta_api_url: String,
    /// `WOMPI_PRIVATE_KEY`.
    pub wompi_private_key: Option<String>,
    /// `WOMPI_EVENTS_SECRET`: the events checksum secret.
    pub wompi_events_secret: Option<String>,
    pub wompi_api_url: String,
    /// `PAYMENTS_MOCK_WEBHOOK_SECRET`: HMAC key of mock webhooks (development only).
    pub mock_webhook_secret: Option<String>,
    /// `PAYMENTS_PROVIDER_TIMEOUT_SECONDS` (default 10): one provider call.
    pub provider_timeout: Duration,
}

impl std::fmt::Debug for PaymentsConfig {
    // Secrets are never printed: only whether each is set.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentsConfig")
            .field("default_provider", &self.default_provider)
            .field("stripe_secret_key", &self.stripe_secret_key.is_some())
            .field(
                "stripe_webhook_secret",
                &self.stripe_webhook_secret.is_some(),
            )
            .field("stripe_webhook_tolerance", &self.stripe_webhook_tolerance)
            .field("stripe_api_url", &self.stripe_api_url)
            .field("conekta_api_key", &self.conekta_api_key.is_some())
            .field(
                "conekta_webhook_public_key",
                &self.conekta_webhook_public_key.is_some(),
            )
            .field("conekta_api_url", &self.conekta_api_url)
            .field("wompi_private_key", &self.wompi_private_key.is_some())
            .field("wompi_events_secret", &self.wompi_events_secret.is_some())
            .field("wompi_api_url", &self.wompi_api_url)
            .field("mock_webhook_secret", &self.mock_webhook_secret.is_some())
            .field("provider_timeout", &self.provider_timeout)
            .finish()
    }
}

impl Default for PaymentsConfig {
    fn default() -> Self {
        Self {
            default_provider: Provider::Mock,
            stripe_secret_key: None,
            stripe_webhook_secret: None,
            stripe_webhook_tolerance: Duration::from_secs(300),
            stripe_api_url: DEFAULT_STRIPE_API_URL.into(),
            conekta_api_key: None,
            conekta_webhook_public_key: None,
            conekta_api_url: DEFAULT_CONEKTA_API_URL.into(),
            wompi_private_key: None,
            wompi_events_secret: None,
            wompi_api_url: DEFAULT_WOMPI_API_URL.into(),
            mock_webhook_secret: None,
            provider_timeout: Duration::from_secs(10),
        }
    }
}

impl PaymentsConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = Self::default();
        let default_provider = match var("PAYMENTS_PROVIDER") {
            None => d.default_provider,
            Some(raw) => Provider::parse(raw.trim()).ok_or_else(|| ConfigError {
                name: "PAYMENTS_PROVIDER".into(),
                message: format!("{raw:?} is not one of stripe, conekta, wompi, mock"),
            })?,
        };
        Ok(Self {
            default_provider,
            stripe_secret_key: var("STRIPE_SECRET_KEY"),
            stripe_webhook_secret: var("STRIPE_WEBHOOK_SECRET"),
            stripe_webhook_tolerance: Duration::from_secs(parsed(
                "STRIPE_WEBHOOK_TOLERANCE_SECONDS",
                d.stripe_webhook_tolerance.as_secs(),
            )?),
            stripe_api_url: var("STRIPE_API_URL").unwrap_or(d.stripe_api_url),
            conekta_api_key: var("CONEKTA_API_KEY"),
            conekta_webhook_public_key: var("CONEKTA_WEBHOOK_PUBLIC_KEY"),
            conekta_api_url: var("CONEKTA_API_URL").unwrap_or(d.conekta_api_url),
            wompi_private_key: var("WOMPI_PRIVATE_KEY"),
            wompi_events_secret: var("WOMPI_EVENTS_SECRET"),
            wompi_api_url: var("WOMPI_API_URL").unwrap_or(d.wompi_api_url),
            mock_webhook_secret: var("PAYMENTS_MOCK_WEBHOOK_SECRET"),
            provider_timeout: Duration::from_secs(parsed(
                "PAYMENTS_PROVIDER_TIMEOUT_SECONDS",
                d.provider_timeout.as_secs(),
            )?),
        })
    }
}
