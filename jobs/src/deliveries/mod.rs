//! Deliveries (issue 5, seeds/001): invitations and reminders to guests by WhatsApp
//! (360dialog) and e-mail (SMTP), the 24 h WhatsApp session window, and the delivery rows'
//! status machine. The job kinds live in `kinds::{delivery, delivery_bulk, wa_inbound}`.

pub mod email;
pub mod phone;
pub mod providers;
pub mod qr;
pub mod ratelimit;
pub mod store;
pub mod whatsapp;

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Why a message was not sent. The delivery kind turns it into the engine's outcome
/// (`kinds::delivery`): a refusal fails the task, anything else is retried.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SendError {
    /// Will never be sent as it is (the provider rejected it, an address is invalid).
    #[error("{code}: {message}")]
    Refused { code: String, message: String },
    /// Not now (network, 5xx, 429, the outbox file); `retry_after` is the provider's own
    /// `Retry-After` when it sent one.
    #[error("{code}: {message}")]
    Unavailable {
        code: String,
        message: String,
        retry_after: Option<Duration>,
    },
}

impl SendError {
    pub fn refused(code: &str, message: impl Into<String>) -> Self {
        Self::Refused {
            code: code.into(),
            message: message.into(),
        }
    }

    pub fn unavailable(code: &str, message: impl Into<String>) -> Self {
        Self::Unavailable {
            code: code.into(),
            message: message.into(),
            retry_after: None,
        }
    }
}

/// How long an inbound WhatsApp message keeps the free-form window open.
pub const SESSION_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(24);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Whatsapp,
    Email,
}

impl Channel {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "whatsapp" => Some(Self::Whatsapp),
            "email" => Some(Self::Email),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Whatsapp => "whatsapp",
            Self::Email => "email",
        }
    }

    /// The guest field this channel needs.
    pub fn contact_field(self) -> &'static str {
        match self {
            Self::Whatsapp => "phone",
            Self::Email => "email",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    Invitation,
    Reminder,
}

impl MessageKind {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "invitation" => Some(Self::Invitation),
            "reminder" => Some(Self::Reminder),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invitation => "invitation",
            Self::Reminder => "reminder",
        }
    }
}

/// What a message is about: the guest and the event, as read when sending.
#[derive(Debug, Clone)]
pub struct Recipient {
    pub event_id: String,
    pub event_name: String,
    pub event_starts_at: Option<chrono::DateTime<chrono::Utc>>,
    pub guest_id: String,
    pub guest_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub ticket_code: Option<String>,
}

/// A provider accepted the message.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    pub provider_message_id: String,
    /// `text` or `template` for WhatsApp, `email` for mail; `mock` is appended in mock mode.
    pub mode: String,
}
