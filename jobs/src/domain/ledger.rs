//! The director ledger: entries and per-organizer balances (seeds/000, "Ledger y movimientos").

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryType {
    AssignPrepaid,
    AssignLoan,
    Payment,
}

impl EntryType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AssignPrepaid => "assign_prepaid",
            Self::AssignLoan => "assign_loan",
            Self::Payment => "payment",
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewEntry {
    pub organizer_id: String,
    pub event_id: Option<String>,
    pub entry_type: EntryType,
    pub tickets: i32,
    pub tickets_equivalent: i32,
    pub amount_cents: i64,
    pub currency: String,
    pub metadata: Value,
    pub task_id: Uuid,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub id: Uuid,
    pub organizer_id: String,
    pub event_id: Option<String>,
    pub entry_type: String,
    pub tickets: i32,
    pub tickets_equivalent: i32,
    pub amount_cents: i64,
    pub currency: String,
    pub metadata: Value,
    pub task_id: Uuid,
    pub created_at: DateTime<Utc>,
}

/// An organizer's totals in one currency; `debt_cents` = assigned − paid (negative = credit).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Balance {
    pub organizer_id: String,
    pub currency: String,
    pub tickets: i64,
    pub tickets_equivalent: i64,
    pub assigned_cents: i64,
    pub paid_cents: i64,
    pub debt_cents: i64,
}

/// Writes one entry and moves the organizer's balance by it; call inside the transaction
/// that completes the task.
pub async fn record(
    conn: &mut PgConnection,
    e: &NewEntry,
) -> Result<(Entry, Balance), sqlx::Error> {
    let row = sqlx::query(
        "INSERT INTO director_ledger_entries (id, organizer_id, event_id, entry_type, tickets, \
             tickets_equivalent, amount_cents, currency, metadata, task_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         RETURNING id, organizer_id, event_id, entry_type, tickets, tickets_equivalent, \
             amount_cents, currency, metadata, task_id, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(&e.organizer_id)
    .bind(&e.event_id)
    .bind(e.entry_type.as_str())
    .bind(e.tickets)
    .bind(e.tickets_equivalent)
    .bind(e.amount_cents)
    .bind(&e.currency)
    .bind(&e.metadata)
    .bind(e.task_id)
    .fetch_one(&mut *conn)
    .await?;
    let entry = Entry {
        id: row.try_get("id")?,
        organizer_id: row.try_get("organizer_id")?,
        event_id: row.try_get("event_id")?,
        entry_type: row.try_get("entry_type")?,
        tickets: row.try_get("tickets")?,
        tickets_equivalent: row.try_get("tickets_equivalent")?,
        amount_cents: row.try_get("amount_cents")?,
        currency: row.try_get::<String, _>("currency")?,
        metadata: row.try_get("metadata")?,
        task_id: row.try_get("task_id")?,
        created_at: row.try_get("created_at")?,
    };
    let (assigned, paid) = match e.entry_type {
        EntryType::Payment => (0, e.amount_cents),
        _ => (e.amount_cents, 0),
    };
    let row = sqlx::query(
        "INSERT INTO organizer_balances AS b (organizer_id, currency, tickets, tickets_equivalent, \
             assigned_cents, paid_cents) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (organizer_id, currency) DO UPDATE SET \
             tickets = b.tickets + EXCLUDED.tickets, \
             tickets_equivalent = b.tickets_equivalent + EXCLUDED.tickets_equivalent, \
             assigned_cents = b.assigned_cents + EXCLUDED.assigned_cents, \
             paid_cents = b.paid_cents + EXCLUDED.paid_cents, updated_at = now() \
         RETURNING tickets, tickets_equivalent, assigned_cents, paid_cents",
    )
    .bind(&e.organizer_id)
    .bind(&e.currency)
    .bind(i64::from(e.tickets))
    .bind(i64::from(e.tickets_equivalent))
    .bind(assigned)
    .bind(paid)
    .fetch_one(&mut *conn)
    .await?;
    let assigned_cents: i64 = row.try_get("assigned_cents")?;
    let paid_cents: i64 = row.try_get("paid_cents")?;
    let balance = Balance {
        organizer_id: e.organizer_id.clone(),
        currency: e.currency.clone(),
        tickets: row.try_get("tickets")?,
        tickets_equivalent: row.try_get("tickets_equivalent")?,
        assigned_cents,
        paid_cents,
        debt_cents: assigned_cents - paid_cents,
    };
    Ok((entry, balance))
}

/// Whether the organizer exists (ledger writers fail permanently when it does not).
pub async fn organizer_exists(conn: &mut PgConnection, id: &str) -> Result<bool, sqlx::Error> {
    let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM organizers WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(found.is_some())
}
