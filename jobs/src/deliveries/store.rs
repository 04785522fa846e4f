//! All SQL on `deliveries` and `wa_sessions`. Status changes are conditional updates that
//! only move forward: queued < sent < delivered < read, and `failed` only from queued or
//! sent, so duplicated or out-of-order webhooks and retried attempts are harmless.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgExecutor, Row};
use uuid::Uuid;

use super::{Channel, MessageKind, Recipient, SESSION_WINDOW};

/// A delivery with what is needed to send it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: Uuid,
    pub status: String,
    pub channel: Channel,
    pub kind: MessageKind,
    pub template: Option<String>,
    pub provider_message_id: Option<String>,
    pub recipient: Recipient,
}

pub async fn by_task<'e>(
    db: impl PgExecutor<'e>,
    task: Uuid,
) -> Result<Option<Delivery>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT d.id, d.status, d.channel, d.kind, d.template, d.provider_message_id, \
                e.id AS event_id, e.name AS event_name, e.starts_at, \
                g.id AS guest_id, g.name AS guest_name, g.email, g.phone, g.ticket_code \
         FROM deliveries d \
         JOIN guests g ON g.event_id = d.event_id AND g.id = d.guest_id \
         JOIN events e ON e.id = d.event_id \
         WHERE d.task_id = $1",
    )
    .bind(task)
    .fetch_optional(db)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let channel: String = r.try_get("channel")?;
    let kind: String = r.try_get("kind")?;
    Ok(Some(Delivery {
        id: r.try_get("id")?,
        status: r.try_get("status")?,
        // The table's CHECK constraints make other values impossible.
        channel: Channel::parse(&channel).unwrap_or(Channel::Email),
        kind: MessageKind::parse(&kind).unwrap_or(MessageKind::Invitation),
        template: r.try_get("template")?,
        provider_message_id: r.try_get("provider_message_id")?,
        recipient: Recipient {
            event_id: r.try_get("event_id")?,
            event_name: r.try_get("event_name")?,
            event_starts_at: r.try_get("starts_at")?,
            guest_id: r.try_get("guest_id")?,
            guest_name: r.try_get("guest_name")?,
            email: r.try_get("email")?,
            phone: r.try_get("phone")?,
            ticket_code: r.try_get("ticket_code")?,
        },
    }))
}

/// A new `queued` delivery whose id is its task's id.
#[allow(clippy::too_many_arguments)]
pub async fn insert(
    conn: &mut PgConnection,
    task: Uuid,
    event_id: &str,
    guest_id: &str,
    channel: Channel,
    kind: MessageKind,
    template: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO deliveries (id, event_id, guest_id, channel, kind, template, status, task_id) \
         VALUES ($1, $2, $3, $4, $5, $6, 'queued', $1)",
    )
    .bind(task)
    .bind(event_id)
    .bind(guest_id)
    .bind(channel.as_str())
    .bind(kind.as_str())
    .bind(template)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks deliveries `sent`, as a completion effect (`engine::Effect`): the delivery
/// ids are the task ids, `arg` the provider's message id. Applied in the runner's batched
/// completion, so a burst of sends shares one commit instead of one per send.
pub const MARK_SENT_EFFECT: &str = "UPDATE deliveries d SET \
        status = CASE WHEN d.status = 'queued' THEN 'sent' ELSE d.status END, \
        provider_message_id = e.arg, sent_at = COALESCE(d.sent_at, now()), error = NULL, \
        updated_at = now() \
    FROM {done} e WHERE d.id = e.id";

/// The deliveries of these tasks will not be sent: their tasks ended without sending
/// (failed, dead, cancelled), so none stays `queued` behind a finished task. Only `queued`
/// ones change: a delivery the provider already took keeps its status.
pub async fn fail_unsent<'e>(
    db: impl PgExecutor<'e>,
    task_ids: &[Uuid],
    error: &Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE deliveries SET status = 'failed', error = $2, failed_at = now(), updated_at = now() \
         WHERE task_id = ANY($1) AND status = 'queued'",
    )
    .bind(task_ids)
    .bind(error)
    .execute(db)
    .await?;
    Ok(())
}

/// Their tasks were re-driven: deliveries that failed before the provider ever accepted them
/// (no message id) are queued again, so the re-drive sends; one handed over is never sent
/// twice.
pub async fn requeue_unsent<'e>(
    db: impl PgExecutor<'e>,
    task_ids: &[Uuid],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE deliveries SET status = 'queued', error = NULL, failed_at = NULL, updated_at = now() \
         WHERE task_id = ANY($1) AND status = 'failed' AND provider_message_id IS NULL",
    )
    .bind(task_ids)
    .execute(db)
    .await?;
    Ok(())
}

/// The task ids of the deliveries of a bulk send.
pub async fn children_of<'e>(
    db: impl PgExecutor<'e>,
    bulk_task_id: Uuid,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT task_id FROM deliveries WHERE bulk_task_id = $1 AND task_id IS NOT NULL",
    )
    .bind(bulk_task_id)
    .fetch_all(db)
    .await
}

/// Applies a provider status to the delivery with that message id, forward only.
/// Returns whether a delivery has this id at all (changed or not).
pub async fn apply_status(
    conn: &mut PgConnection,
    message_id: &str,
    status: &str,
    at: DateTime<Utc>,
    error: Option<&Value>,
) -> Result<bool, sqlx::Error> {
    let found: Option<String> = sqlx::query_scalar(
        "WITH target AS (SELECT id, status AS old FROM deliveries WHERE provider_message_id = $1 FOR UPDATE), \
         upd AS ( \
             UPDATE deliveries d SET status = $2, \
                 sent_at = CASE WHEN $2 IN ('sent', 'delivered', 'read') THEN COALESCE(d.sent_at, $3) ELSE d.sent_at END, \
                 delivered_at = CASE WHEN $2 IN ('delivered', 'read') THEN COALESCE(d.delivered_at, $3) ELSE d.delivered_at END, \
                 read_at = CASE WHEN $2 = 'read' THEN COALESCE(d.read_at, $3) ELSE d.read_at END, \
                 failed_at = CASE WHEN $2 = 'failed' THEN $3 ELSE d.failed_at END, \
                 error = CASE WHEN $2 = 'failed' THEN $4 ELSE d.error END, \
                 updated_at = now() \
             FROM target t WHERE d.id = t.id AND ( \
                 ($2 = 'failed' AND t.old IN ('queued', 'sent')) OR \
                 ($2 <> 'failed' AND array_position(ARRAY['queued','sent','delivered','read'], t.old) \
                     < array_position(ARRAY['queued','sent','delivered','read'], $2::text))) \
             RETURNING d.id) \
         SELECT old FROM target",
    )
    .bind(message_id)
    .bind(status)
    .bind(at)
    .bind(error)
    .fetch_optional(conn)
    .await?;
    Ok(found.is_some())
}

/// Opens or extends the session window of `phone` from an inbound message at `at` (never
/// moves it back: webhooks may arrive out of order).
pub async fn touch_session(
    conn: &mut PgConnection,
    phone: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO wa_sessions (phone, last_inbound_at) VALUES ($1, $2) \
         ON CONFLICT (phone) DO UPDATE SET \
             last_inbound_at = GREATEST(wa_sessions.last_inbound_at, EXCLUDED.last_inbound_at), \
             updated_at = now()",
    )
    .bind(phone)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The session window of a normalized phone: (last inbound, expiry) when ever opened.
pub async fn session<'e>(
    db: impl PgExecutor<'e>,
    phone: &str,
) -> Result<Option<(DateTime<Utc>, DateTime<Utc>)>, sqlx::Error> {
    let last: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT last_inbound_at FROM wa_sessions WHERE phone = $1")
            .bind(phone)
            .fetch_optional(db)
            .await?;
    Ok(last.map(|l| (l, l + SESSION_WINDOW)))
}
