//! WhatsApp through 360dialog (WhatsApp Cloud API shape): `POST {url}/messages` with the
//! `D360-API-KEY` header. Free-form text needs an open 24 h session window; outside it
//! only an approved template may be sent.

use std::time::Duration;

use serde_json::{json, Value};

use super::{MessageKind, Recipient, SendError, Sent};

/// What to send: free-form text (window open) or a template.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Text(String),
    Template {
        name: String,
        language: String,
        params: Vec<String>,
    },
}

/// The text of a free-form message.
pub fn text_for(kind: MessageKind, r: &Recipient) -> String {
    let when = r
        .event_starts_at
        .map(|t| format!(" ({})", t.format("%Y-%m-%d %H:%M UTC")))
        .unwrap_or_default();
    let code = r
        .ticket_code
        .as_deref()
        .map(|c| format!(" Tu código de entrada: {c}."))
        .unwrap_or_default();
    match kind {
        MessageKind::Invitation => format!(
            "Hola {}, estás invitado a {}{when}.{code}",
            r.guest_name, r.event_name
        ),
        MessageKind::Reminder => format!(
            "Hola {}, te recordamos {}{when}.{code}",
            r.guest_name, r.event_name
        ),
    }
}

/// The Cloud API request body.
pub fn request_body(to: &str, body: &Body) -> Value {
    // The Cloud API takes the number without '+'.
    let to = to.trim_start_matches('+');
    match body {
        Body::Text(text) => json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": "text",
            "text": { "preview_url": false, "body": text },
        }),
        Body::Template {
            name,
            language,
            params,
        } => json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": "template",
            "template": {
                "name": name,
                "language": { "code": language },
                "components": [{
                    "type": "body",
                    "parameters": params.iter().map(|p| json!({"type": "text", "text": p})).collect::<Vec<_>>(),
                }],
            },
        }),
    }
}

#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    url: String,
    key: String,
}

impl Client {
    pub fn new(url: &str, key: &str, timeout: Duration) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .pool_max_idle_per_host(256)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            http,
            url: format!("{}/messages", url.trim_end_matches('/')),
            key: key.to_string(),
        })
    }

    /// Sends one message. Network errors, 5xx, 408 and 429 are retryable (429 with its
    /// `Retry-After`); any other 4xx is the provider refusing this message: permanent, with
    /// its reason.
    pub async fn send(&self, request: &Value) -> Result<String, SendError> {
        let resp = self
            .http
            .post(&self.url)
            .header("D360-API-KEY", &self.key)
            .json(request)
            .send()
            .await
            .map_err(|e| {
                SendError::unavailable("provider_unreachable", format!("whatsapp: {e}"))
            })?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = resp.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return body["messages"][0]["id"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| {
                    SendError::unavailable(
                        "provider_bad_response",
                        "whatsapp answered 2xx without messages[0].id",
                    )
                });
        }
        let reason = provider_reason(&body, &text);
        let message = format!("whatsapp answered {}: {reason}", status.as_u16());
        match status.as_u16() {
            429 => match retry_after {
                Some(after) => Err(SendError::Unavailable {
                    code: "provider_rate_limited".into(),
                    message,
                    retry_after: Some(after.min(Duration::from_secs(3600))),
                }),
                None => Err(SendError::unavailable("provider_rate_limited", message)),
            },
            408 | 500..=599 => Err(SendError::unavailable("provider_unavailable", message)),
            _ => Err(SendError::refused("provider_rejected", message)),
        }
    }
}

/// The provider's explanation: Cloud API `error.message` (+ `error_data.details`), the
/// 360dialog v1 `meta.developer_message` / `errors[0].details`, or the raw text.
fn provider_reason(body: &Value, text: &str) -> String {
    let candidates = [
        body["error"]["error_data"]["details"].as_str(),
        body["error"]["message"].as_str(),
        body["meta"]["developer_message"].as_str(),
        body["errors"][0]["details"].as_str(),
        body["errors"][0]["title"].as_str(),
    ];
    let reason = candidates
        .into_iter()
        .flatten()
        .next()
        .map(str::to_string)
        .unwrap_or_else(|| text.chars().take(300).collect());
    if reason.is_empty() {
        "no reason given".into()
    } else {
        reason
    }
}

/// The message id a mock send records.
pub fn mock_sent(mode: &str) -> Sent {
    Sent {
        provider_message_id: format!("mock-{}", uuid::Uuid::now_v7()),
        mode: format!("{mode}-mock"),
    }
}
