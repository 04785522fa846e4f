//! SQL of `payments` and `payment_events`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{ParsedEvent, PaymentStatus, Provider};

/// A payment as clients read it (`GET /payments/{id}`).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    pub id: Uuid,
    #[serde(skip)]
    pub requester: String,
    pub provider: String,
    pub provider_ref: String,
    pub organizer_id: Option<String>,
    pub amount_cents: i64,
    pub currency: String,
    pub status: String,
    pub description: Option<String>,
    pub metadata: Value,
    pub client: Value,
    pub ledger_entry_id: Option<Uuid>,
    /// The ledger entry that reversed `ledger_entry_id` when the payment was refunded.
    pub refund_entry_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, requester, provider, provider_ref, organizer_id, amount_cents, currency, \
    status, description, metadata, client, ledger_entry_id, refund_entry_id, created_at, updated_at";

pub struct NewPayment<'a> {
    pub id: Uuid,
    pub requester: &'a str,
    pub provider: Provider,
    pub provider_ref: &'a str,
    pub organizer_id: Option<&'a str>,
    pub amount_cents: i64,
    pub currency: &'a str,
    pub status: PaymentStatus,
    pub description: Option<&'a str>,
    pub metadata: &'a Value,
    pub client: &'a Value,
    pub raw: &'a Value,
}

/// Stores the payment of an intent; a second call for the same id (a retried task whose
/// provider call was idempotent) returns the row already there.
pub async fn insert(conn: &mut PgConnection, p: &NewPayment<'_>) -> Result<Payment, sqlx::Error> {
    sqlx::query(
        "INSERT INTO payments (id, requester, provider, provider_ref, organizer_id, amount_cents, \
             currency, status, description, metadata, client, raw) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (id) DO NOTHING",
    )
    .bind(p.id)
    .bind(p.requester)
    .bind(p.provider.as_str())
    .bind(p.provider_ref)
    .bind(p.organizer_id)
    .bind(p.amount_cents)
    .bind(p.currency)
    .bind(p.status.as_str())
    .bind(p.description)
    .bind(p.metadata)
    .bind(p.client)
    .bind(p.raw)
    .execute(&mut *conn)
    .await?;
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM payments WHERE id = $1"))
        .bind(p.id)
        .fetch_one(&mut *conn)
        .await
}

/// A payment by id, only if `requester` created it (`None` = any, for operators).
pub async fn get(
    pool: &PgPool,
    id: Uuid,
    requester: Option<&str>,
) -> Result<Option<Payment>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM payments WHERE id = $1 AND ($2::text IS NULL OR requester = $2)"
    ))
    .bind(id)
    .bind(requester)
    .fetch_optional(pool)
    .await
}

/// One applied event of a payment's history.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub event_id: String,
    pub kind: String,
    pub status: Option<String>,
    pub moved: Option<bool>,
    pub received_at: DateTime<Utc>,
    pub applied_at: Option<DateTime<Utc>>,
}

/// The events applied to a payment, oldest first.
pub async fn history(pool: &PgPool, id: Uuid) -> Result<Vec<HistoryEntry>, sqlx::Error> {
    sqlx::query_as(
        "SELECT event_id, kind, status, moved, received_at, applied_at FROM payment_events \
         WHERE payment_id = $1 ORDER BY received_at, event_id",
    )
    .bind(id)
    .fetch_all(pool)
    .await
}

/// Stores a verified event verbatim; `false` when this (provider, event id) was already
/// stored (a redelivery).
pub async fn store_event(
    conn: &mut PgConnection,
    provider: Provider,
    event: &ParsedEvent,
    body: &[u8],
) -> Result<bool, sqlx::Error> {
    let stored = sqlx::query(
        "INSERT INTO payment_events (provider, event_id, kind, provider_ref, status, body) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (provider, event_id) DO NOTHING",
    )
    .bind(provider.as_str())
    .bind(&event.event_id)
    .bind(&event.kind)
    .bind(&event.provider_ref)
    .bind(event.status.map(PaymentStatus::as_str))
    .bind(body)
    .execute(&mut *conn)
    .await?;
    Ok(stored.rows_affected() == 1)
}

/// The stored body of an event.
pub async fn event_body(
    conn: &mut PgConnection,
    provider: Provider,
    event_id: &str,
) -> Result<Option<Vec<u8>>, sqlx::Error> {
    sqlx::query_scalar("SELECT body FROM payment_events WHERE provider = $1 AND event_id = $2")
        .bind(provider.as_str())
        .bind(event_id)
        .fetch_optional(&mut *conn)
        .await
}

/// The payment an event is about, locked for the rest of the transaction (concurrent
/// events of one payment apply one after the other).
pub async fn lock_by_ref(
    conn: &mut PgConnection,
    provider: Provider,
    provider_ref: &str,
) -> Result<Option<Payment>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM payments WHERE provider = $1 AND provider_ref = $2 FOR UPDATE"
    ))
    .bind(provider.as_str())
    .bind(provider_ref)
    .fetch_optional(&mut *conn)
    .await
}

/// Moves a payment to `status` (the caller checked the rank), keeping the event's object.
/// The director ledger entry a payment's move wrote.
#[derive(Debug, Clone, Copy)]
pub enum LedgerEffect {
    /// It succeeded: the organizer's payment.
    Paid(Uuid),
    /// It was refunded after succeeding: the entry that reverses the payment.
    Reversed(Uuid),
}

pub async fn set_status(
    conn: &mut PgConnection,
    id: Uuid,
    status: PaymentStatus,
    raw: &Value,
    entry: Option<LedgerEffect>,
) -> Result<(), sqlx::Error> {
    let (paid, refunded) = match entry {
        Some(LedgerEffect::Paid(id)) => (Some(id), None),
        Some(LedgerEffect::Reversed(id)) => (None, Some(id)),
        None => (None, None),
    };
    sqlx::query(
        "UPDATE payments SET status = $2, raw = $3, \
             ledger_entry_id = COALESCE(ledger_entry_id, $4), \
             refund_entry_id = COALESCE(refund_entry_id, $5), updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(raw)
    .bind(paid)
    .bind(refunded)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Marks an event applied to `payment_id` (and whether it moved it).
pub async fn mark_applied(
    conn: &mut PgConnection,
    provider: Provider,
    event_id: &str,
    payment_id: Uuid,
    moved: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE payment_events SET payment_id = $3, moved = $4, applied_at = now() \
         WHERE provider = $1 AND event_id = $2",
    )
    .bind(provider.as_str())
    .bind(event_id)
    .bind(payment_id)
    .bind(moved)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
