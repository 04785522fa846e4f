//! `delivery`: sends one invitation or reminder to one guest (seeds/001 `deliveryQueue`).
//!
//! The task's id is its delivery's id. The handler reads the delivery, guest and event,
//! waits for the channel's global rate limit, sends, and marks the delivery `sent` in the
//! statement that completes the task (the runner's batched completion). A provider refusal (4xx) fails it at once; network
//! errors, 5xx and 429 are retried with backoff (429 no sooner than its `Retry-After`), and
//! the last failed attempt marks the delivery `failed` before the task goes `dead`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::KindSpec;
use crate::{
    deliveries::{store, Channel, MessageKind, SESSION_WINDOW},
    queue,
    task::{
        context::{Done, Effect, JobError, TaskContext},
        retry::Backoff,
    },
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

pub fn spec() -> KindSpec {
    KindSpec::new(
        NAME,
        queue::DELIVERIES,
        MAX_ATTEMPTS,
        Duration::from_secs(60),
        // DESIGN §3: deliveries retry from 2 s up to 10 min.
        Backoff::new(Duration::from_secs(2), Duration::from_secs(600)),
        run,
    )
}

async fn run(ctx: TaskContext) -> Result<Done, JobError> {
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
        Err(err) => {
            let last = match &err {
                JobError::Permanent { .. } => true,
                JobError::Retryable { .. } | JobError::RetryAfter { .. } => {
                    ctx.attempt >= ctx.max_attempts
                }
                JobError::Cancelled | JobError::Superseded | JobError::Waiting { .. } => false,
            };
            if last {
                let (code, message) = match &err {
                    JobError::Permanent { code, message }
                    | JobError::Retryable { code, message }
                    | JobError::RetryAfter { code, message, .. } => (code.clone(), message.clone()),
                    _ => (String::new(), String::new()),
                };
                let error = json!({ "code": code, "message": message, "attempt": ctx.attempt });
                // Before the task is recorded failed/dead, so a delivery never stays
                // `queued` behind a finished task.
                store::mark_failed(ctx.pool(), d.id, &error).await?;
            }
            Err(err)
        }
    }
}

async fn send(ctx: &TaskContext, d: &store::Delivery) -> Result<crate::deliveries::Sent, JobError> {
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
        }
        Channel::Email => {
            if d.recipient.email.is_none() {
                return Err(JobError::permanent(
                    "missing_email",
                    format!("guest {:?} has no e-mail", d.recipient.guest_id),
                ));
            }
            providers.throttle(d.channel).await;
            providers.send_email(d.id, d.kind, &d.recipient).await
        }
    }
}
