//! `wa_inbound`: one webhook call from 360dialog (seeds/001 `waInboundQueue`), applied
//! after the api already answered 200.
//!
//! Understands the WhatsApp Cloud API shape (`entry[].changes[].value.{statuses,messages}`,
//! what 360dialog v2 forwards) and the flat 360dialog v1 shape (`{statuses, messages}`).
//! Statuses move deliveries forward only (see `deliveries::store`), so duplicates and
//! out-of-order calls are harmless; inbound user messages open or extend the sender's 24 h
//! window. Everything commits with the task's completion. The api stores one task per
//! provider event set ([`dedupe_key`]): a redelivered call gets the first call's task.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use engine::{retry::Backoff, Done, JobError, Kind};

use crate::{
    deliveries::{phone, store},
    queues, Ctx, Services,
};

pub const NAME: &str = "wa_inbound";
/// Attempts during which a status for an unknown message id is retried: the status can
/// overtake the commit of the send that produced the id.
const UNMATCHED_RETRIES: i32 = 3;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InboundParams {
    pub payload: Value,
    pub received_at: DateTime<Utc>,
}

/// The `wa_inbound` kind.
pub struct WaInbound;

impl Kind for WaInbound {
    type State = Services;
    const NAME: &'static str = NAME;
    const QUEUE: &'static str = queues::WEBHOOKS;
    const MAX_ATTEMPTS: i32 = 6;
    const TIMEOUT: Duration = Duration::from_secs(30);
    const BACKOFF: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));

    async fn run(ctx: Ctx) -> Result<Done, JobError> {
        run(ctx).await
    }
}

/// The `statuses` and `messages` arrays of either payload shape.
pub fn extract(payload: &Value) -> (Vec<&Value>, Vec<&Value>) {
    let mut statuses = Vec::new();
    let mut messages = Vec::new();
    let mut values = vec![payload];
    for entry in payload
        .get("entry")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for change in entry
            .get("changes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            values.extend(change.get("value"));
        }
    }
    for v in values {
        if let Some(a) = v.get("statuses").and_then(Value::as_array) {
            statuses.extend(a.iter());
        }
        if let Some(a) = v.get("messages").and_then(Value::as_array) {
            messages.extend(a.iter());
        }
    }
    (statuses, messages)
}

/// The provider events of a payload, one key each: `status:<message id>:<status>` and
/// `message:<message id>`, sorted and without repeats. Entries without an id have no key.
pub fn event_keys(payload: &Value) -> Vec<String> {
    let (statuses, messages) = extract(payload);
    let id = |v: &Value| v.get("id").and_then(Value::as_str).map(str::to_string);
    let mut keys: Vec<String> = statuses
        .into_iter()
        .filter_map(|s| {
            let status = s.get("status").and_then(Value::as_str)?;
            Some(format!("status:{}:{status}", id(s)?))
        })
        .chain(
            messages
                .into_iter()
                .filter_map(|m| Some(format!("message:{}", id(m)?))),
        )
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// The idempotency key of a webhook call: a digest of its event keys, or of the raw body
/// when it carries none (a call repeated byte for byte is still one task). Providers
/// redeliver a call they think failed, so the same events must not make a second task.
pub fn dedupe_key(payload: &Value, raw_body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let keys = event_keys(payload);
    let digest = if keys.is_empty() {
        Sha256::new()
            .chain_update(b"body\n")
            .chain_update(raw_body)
            .finalize()
    } else {
        let mut h = Sha256::new().chain_update(b"events\n");
        for k in &keys {
            h.update(k.as_bytes());
            h.update(b"\n");
        }
        h.finalize()
    };
    format!("wa-event:{}", hex::encode(digest))
}

/// A webhook timestamp (unix seconds, as a string or a number), never in the future.
fn timestamp(v: &Value, fallback: DateTime<Utc>) -> DateTime<Utc> {
    let secs = match v.get("timestamp") {
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        Some(Value::Number(n)) => n.as_i64(),
        _ => None,
    };
    secs.and_then(|s| DateTime::from_timestamp(s, 0))
        .map(|t| t.min(Utc::now()))
        .unwrap_or(fallback)
}

async fn run(ctx: Ctx) -> Result<Done, JobError> {
    let p: InboundParams = ctx.params()?;
    let (statuses, messages) = extract(&p.payload);
    let mut tx = ctx.pool().begin().await?;
    let mut applied = 0;
    let mut unknown_status = 0;
    let mut unmatched = Vec::new();
    for s in statuses {
        let (Some(id), Some(status)) = (
            s.get("id").and_then(Value::as_str),
            s.get("status").and_then(Value::as_str),
        ) else {
            unknown_status += 1;
            continue;
        };
        if !matches!(status, "sent" | "delivered" | "read" | "failed") {
            // e.g. "deleted", "warning": nothing to apply.
            unknown_status += 1;
            continue;
        }
        let at = timestamp(s, p.received_at);
        let error = (status == "failed").then(|| {
            json!({
                "code": "provider_failed",
                "message": s.pointer("/errors/0/title").or(s.pointer("/errors/0/message"))
                    .and_then(Value::as_str).unwrap_or("the provider reported the message failed"),
                "details": s.get("errors").cloned().unwrap_or(Value::Null),
            })
        });
        if store::apply_status(&mut tx, id, status, at, error.as_ref()).await? {
            applied += 1;
        } else {
            unmatched.push(id.to_string());
        }
    }
    let mut windows = 0;
    for m in messages {
        let Some(from) = m
            .get("from")
            .and_then(Value::as_str)
            .and_then(phone::normalize)
        else {
            continue;
        };
        store::touch_session(&mut tx, &from, timestamp(m, p.received_at)).await?;
        windows += 1;
    }
    if !unmatched.is_empty() && ctx.attempt < UNMATCHED_RETRIES {
        tx.rollback().await?;
        return Err(JobError::retryable(
            "unknown_message_id",
            format!("no delivery has message id(s) {unmatched:?} yet"),
        ));
    }
    ctx.complete_in(
        tx,
        json!({
            "statuses": applied,
            "unmatched": unmatched,
            "ignored": unknown_status,
            "sessionsTouched": windows,
        }),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_both_shapes() {
        let cloud = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "statuses": [{"id": "wamid.1", "status": "read", "timestamp": "1700000000", "recipient_id": "5215550000"}],
            "messages": [{"from": "5215550000", "id": "wamid.in", "timestamp": "1700000000", "type": "text", "text": {"body": "hola"}}]
        }}]}]});
        let (s, m) = extract(&cloud);
        assert_eq!((s.len(), m.len()), (1, 1));
        let flat =
            json!({"statuses": [{"id": "a", "status": "sent"}, {"id": "b", "status": "sent"}]});
        let (s, m) = extract(&flat);
        assert_eq!((s.len(), m.len()), (2, 0));
        assert_eq!(extract(&json!({})).0.len(), 0);
        assert_eq!(extract(&json!([1, 2])).0.len(), 0);
    }

    #[test]
    fn one_event_set_one_key() {
        let a =
            json!({"statuses": [{"id": "w1", "status": "read"}, {"id": "w2", "status": "sent"}]});
        let b = json!({"statuses": [{"id": "w2", "status": "sent"}, {"id": "w1", "status": "read"}, {"id": "w1", "status": "read"}]});
        assert_eq!(event_keys(&a), ["status:w1:read", "status:w2:sent"]);
        assert_eq!(dedupe_key(&a, b"x"), dedupe_key(&b, b"y"));
        let c = json!({"statuses": [{"id": "w1", "status": "delivered"}]});
        assert_ne!(dedupe_key(&a, b""), dedupe_key(&c, b""));
        assert_ne!(
            dedupe_key(&json!({}), b"{}"),
            dedupe_key(&json!({}), b"{ }")
        );
    }
}
