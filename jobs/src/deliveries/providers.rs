//! The providers one process sends through, built once from [`DeliveryConfig`]. A provider
//! without credentials runs in mock mode (logged once, as `provider_mock_mode`): sends
//! succeed and are written to `OUTBOX_DIR` (`whatsapp.jsonl`, `mail/<delivery>.eml`) where
//! a developer can read them.

use std::path::PathBuf;

use redis::aio::ConnectionManager;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{
    email, ratelimit::RateLimiter, whatsapp, Channel, MessageKind, Recipient, SendError, Sent,
};
use engine::redis_conn::Keys;

use crate::config::DeliveryConfig;

pub struct Providers {
    whatsapp: Option<whatsapp::Client>,
    smtp: Option<email::SmtpClient>,
    email_from: String,
    template_language: String,
    outbox: PathBuf,
    limiter: RateLimiter,
    whatsapp_per_second: u32,
    email_per_second: u32,
}

impl Providers {
    pub fn new(cfg: &DeliveryConfig, redis: ConnectionManager, keys: Keys) -> Self {
        let whatsapp = cfg.whatsapp_api_key.as_deref().and_then(|key| {
            whatsapp::Client::new(&cfg.whatsapp_api_url, key, cfg.provider_timeout)
                .map_err(|e| tracing::error!(error = %e, "whatsapp client not built"))
                .ok()
        });
        if whatsapp.is_none() {
            tracing::warn!(provider = "whatsapp", outbox = %cfg.outbox_dir.display(), "provider_mock_mode: WHATSAPP_API_KEY is not set; messages go to the outbox");
        }
        let smtp = cfg.smtp_url.as_deref().and_then(|url| {
            email::transport(url, cfg.provider_timeout)
                .map_err(|e| tracing::error!(error = %e, "smtp transport not built"))
                .ok()
        });
        if smtp.is_none() {
            tracing::warn!(provider = "email", outbox = %cfg.outbox_dir.display(), "provider_mock_mode: SMTP_URL is not set; e-mails go to the outbox");
        }
        Self {
            whatsapp,
            smtp,
            email_from: cfg.email_from.clone(),
            template_language: cfg.whatsapp_template_language.clone(),
            outbox: cfg.outbox_dir.clone(),
            limiter: RateLimiter::new(redis, keys),
            whatsapp_per_second: cfg.whatsapp_max_per_second,
            email_per_second: cfg.email_max_per_second,
        }
    }

    /// Waits for the channel's global rate limit.
    pub async fn throttle(&self, channel: Channel) {
        let limit = match channel {
            Channel::Whatsapp => self.whatsapp_per_second,
            Channel::Email => self.email_per_second,
        };
        self.limiter.acquire(channel.as_str(), limit).await;
    }

    /// Sends a WhatsApp message: text while the window is open, else the template
    /// (`template`, or the message kind's name).
    pub async fn send_whatsapp(
        &self,
        delivery: Uuid,
        kind: MessageKind,
        template: Option<&str>,
        window_open: bool,
        r: &Recipient,
    ) -> Result<Sent, SendError> {
        let phone = r.phone.as_deref().unwrap_or("");
        let Some(to) = super::phone::normalize(phone) else {
            return Err(SendError::refused(
                "invalid_phone",
                format!("guest phone {phone:?} is not an E.164 number"),
            ));
        };
        let (body, mode) = if window_open {
            (whatsapp::Body::Text(whatsapp::text_for(kind, r)), "text")
        } else {
            let mut params = vec![r.guest_name.clone(), r.event_name.clone()];
            if let Some(code) = &r.ticket_code {
                params.push(code.clone());
            }
            (
                whatsapp::Body::Template {
                    name: template.unwrap_or(kind.as_str()).to_string(),
                    language: self.template_language.clone(),
                    params,
                },
                "template",
            )
        };
        let request = whatsapp::request_body(&to, &body);
        match &self.whatsapp {
            Some(client) => Ok(Sent {
                provider_message_id: client.send(&request).await?,
                mode: mode.into(),
            }),
            None => {
                let sent = whatsapp::mock_sent(mode);
                let line = json!({
                    "at": chrono::Utc::now(),
                    "deliveryId": delivery,
                    "messageId": sent.provider_message_id,
                    "request": request,
                });
                self.append_outbox("whatsapp.jsonl", line).await?;
                Ok(sent)
            }
        }
    }

    pub async fn send_email(
        &self,
        delivery: Uuid,
        kind: MessageKind,
        r: &Recipient,
    ) -> Result<Sent, SendError> {
        let message = email::build(&self.email_from, kind, r)?;
        self.send_message(message, &delivery.to_string()).await
    }

    /// The configured sender (`EMAIL_FROM`).
    pub fn email_from(&self) -> &str {
        &self.email_from
    }

    /// Sends any e-mail through SMTP, or in mock mode writes it to `mail/<name>.eml` in the
    /// outbox.
    pub async fn send_message(
        &self,
        message: lettre::Message,
        name: &str,
    ) -> Result<Sent, SendError> {
        match &self.smtp {
            Some(transport) => Ok(Sent {
                provider_message_id: email::send(transport, message).await?,
                mode: "email".into(),
            }),
            None => {
                let dir = self.outbox.join("mail");
                let path = dir.join(format!("{name}.eml"));
                let bytes = message.formatted();
                tokio::task::spawn_blocking(move || {
                    std::fs::create_dir_all(&dir)?;
                    std::fs::write(&path, bytes)
                })
                .await
                .map_err(|e| SendError::unavailable("outbox_failed", e.to_string()))?
                .map_err(|e| SendError::unavailable("outbox_failed", e.to_string()))?;
                Ok(Sent {
                    provider_message_id: format!("mock-{name}"),
                    mode: "email-mock".into(),
                })
            }
        }
    }

    async fn append_outbox(&self, file: &str, line: Value) -> Result<(), SendError> {
        let dir = self.outbox.clone();
        let path = dir.join(file);
        let mut text = line.to_string();
        text.push('\n');
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            std::fs::create_dir_all(&dir)?;
            // One write of a whole line with O_APPEND: concurrent sends never interleave.
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?
                .write_all(text.as_bytes())
        })
        .await
        .map_err(|e| SendError::unavailable("outbox_failed", e.to_string()))?
        .map_err(|e| SendError::unavailable("outbox_failed", e.to_string()))
    }
}
