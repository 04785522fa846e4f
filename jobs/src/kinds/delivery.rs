//! `delivery`: sends one invitation or reminder to one guest (seeds/001 `deliveryQueue`).
//!
//! The task's id is its delivery's id. The handler reads the delivery, guest and event,
//! waits for the channel's global rate limit, sends, and marks the delivery `sent` in the
//! statement that completes the task (the runner's batched completion). A provider refusal (4xx) fails it at once; network
//! errors, 5xx and 429 are retried with backoff (429 no sooner than its `Retry-After`).
//! However its task ends without sending, the kind's terminal hook marks the delivery
//! `failed` in the same transaction.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

use engine::{kind::Ended, retry::Backoff, Done, Effect, JobError, Kind, TaskStatus};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    deliveries::{store, Channel, MessageKind, SendError, SESSION_WINDOW},
    queues, Ctx, Services, ServicesExt,
};

pub const NAME: &str = "delivery";
pub const MAX_ATTEMPTS: i32 = 5;
/// Longest template name accepted.
pub const MAX_TEMPLATE_LEN: usize = 128;

/// Stored in the task row. The delivery row (same id as the task) holds the same facts;
/// the params make the task readable on its own and let an Idempotency-Key replay match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryParams {
    pub event_id: String,
    pub guest_id: String,
    pub channel: Channel,
    pub kind: MessageKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
}

/// Template names as 360dialog accepts them: lowercase letters, digits and `_`.
pub fn template_problem(t: &str) -> Option<&'static str> {
    if t.is_empty() || t.len() > MAX_TEMPLATE_LEN {
        Some("must be 1 to 128 characters")
    } else if !t
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        Some("may only contain lowercase letters, digits and '_'")
    } else {
        None
    }
}

/// The `delivery` kind.
pub struct Delivery;

impl Kind for Delivery {
    type State = Services;
    const NAME: &'static str = NAME;
    const QUEUE: &'static str = queues::DELIVERIES;
    const MAX_ATTEMPTS: i32 = MAX_ATTEMPTS;
    // DESIGN §3: deliveries retry from 2 s up to 10 min.
    const TIMEOUT: Duration = Duration::from_secs(60);
    const BACKOFF: Backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(600));

    async fn run(ctx: Ctx) -> Result<Done, JobError> {
        run(ctx).await
    }

    /// Whoever ended the task (the handler's last attempt, a lost worker, a cancel, a
    /// cancelled bulk parent), its delivery does not stay `queued`.
    async fn on_terminal_failure(
        conn: &mut PgConnection,
        ended: &Ended,
    ) -> Result<(), sqlx::Error> {
        let error = match (ended.status, &ended.error) {
            (TaskStatus::Cancelled, _) => {
                json!({ "code": "cancelled", "message": "the delivery task was cancelled" })
            }
            (_, Some(error)) => error.clone(),
            (status, None) => json!({ "code": status.as_str() }),
        };
        store::fail_unsent(conn, &[ended.id], &error).await
    }

    /// A re-drive sends again what was never handed to the provider.
    async fn on_redrive(conn: &mut PgConnection, ids: &[Uuid]) -> Result<(), sqlx::Error> {
        store::requeue_unsent(conn, ids).await
    }
}

async fn run(ctx: Ctx) -> Result<Done, JobError> {
    let Some(d) = store::by_task(ctx.pool(), ctx.id).await? else {
        return Err(JobError::permanent(
            "delivery_not_found",
            format!("no delivery belongs to task {}", ctx.id),
        ));
    };
    if d.status != "queued" {
        // An earlier attempt already sent it (or it failed for good): never send twice.
        return Ok(Done::Result(json!({
            "deliveryId": d.id,
            "status": d.status,
            "providerMessageId": d.provider_message_id,
            "alreadyDone": true,
        })));
    }
    match send(&ctx, &d).await {
        Ok(sent) => {
            // The delivery row (same id as the task) becomes `sent` in the statement that
            // completes the task: both or neither, batched with other completions.
            let result = json!({
                "deliveryId": d.id,
                "status": "sent",
                "channel": d.channel,
                "mode": sent.mode,
                "providerMessageId": sent.provider_message_id,
            });
            Ok(Done::ResultWith(
                result,
                Effect {
                    sql: store::MARK_SENT_EFFECT,
                    arg: sent.provider_message_id,
                },
            ))
        }
        // However the task ends for good, `on_terminal_failure` fails the delivery.
        Err(err) => Err(err),
    }
}

/// The engine's reading of a failed send: a refusal fails the task for good, anything else is
/// retried (no sooner than the provider's `Retry-After`).
impl From<SendError> for JobError {
    fn from(e: SendError) -> Self {
        match e {
            SendError::Refused { code, message } => JobError::Permanent { code, message },
            SendError::Unavailable {
                code,
                message,
                retry_after: Some(after),
            } => JobError::RetryAfter {
                code,
                message,
                after,
            },
            SendError::Unavailable {
                code,
                message,
                retry_after: None,
            } => JobError::Retryable { code, message },
        }
    }
}

async fn send(ctx: &Ctx, d: &store::Delivery) -> Result<crate::deliveries::Sent, JobError> {
    let providers = ctx.providers();
    match d.channel {
        Channel::Whatsapp => {
            let phone = d.recipient.phone.as_deref().unwrap_or("");
            let window_open = match crate::deliveries::phone::normalize(phone) {
                Some(p) => store::session(ctx.pool(), &p)
                    .await?
                    .is_some_and(|(last, _)| last + SESSION_WINDOW > chrono::Utc::now()),
                None => false,
            };
            providers.throttle(d.channel).await;
            providers
                .send_whatsapp(
                    d.id,
                    d.kind,
                    d.template.as_deref(),
                    window_open,
                    &d.recipient,
                )
                .await
                .map_err(JobError::from)
        }
        Channel::Email => {
            if d.recipient.email.is_none() {
                return Err(JobError::permanent(
                    "missing_email",
                    format!("guest {:?} has no e-mail", d.recipient.guest_id),
                ));
            }
            providers.throttle(d.channel).await;
            providers
                .send_email(d.id, d.kind, &d.recipient)
                .await
                .map_err(JobError::from)
        }
    }
}
