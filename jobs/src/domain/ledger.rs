//! The director ledger: entries and per-organizer balances (seeds/000, "Ledger y movimientos").

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{postgres::PgRow, PgConnection, Row};
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
/// that completes the task. Plain `VALUES` statements: for one entry they cost Postgres less
/// than [`record_many`]'s arrays (measured: `payment_webhook` processing, 1,109/s against
/// 948–1,009/s through `record_many`, `scripts/bench/webhooks.sh`).
pub async fn record(
    conn: &mut PgConnection,
    e: &NewEntry,
) -> Result<(Entry, Balance), sqlx::Error> {
    let row = sqlx::query(&format!(
        "INSERT INTO director_ledger_entries ({ENTRY_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {ENTRY_COLUMNS}, created_at"
    ))
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
    let entry = entry_of(&row)?;
    let m = Move::of(e);
    let row = sqlx::query(&format!(
        "INSERT INTO organizer_balances AS b ({BALANCE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) \
         {BALANCE_UPSERT}"
    ))
    .bind(&e.organizer_id)
    .bind(&e.currency)
    .bind(m.tickets)
    .bind(m.tickets_equivalent)
    .bind(m.assigned_cents)
    .bind(m.paid_cents)
    .fetch_one(&mut *conn)
    .await?;
    Ok((entry, balance_of(&row)?))
}

/// The columns an entry is written with.
const ENTRY_COLUMNS: &str = "id, organizer_id, event_id, entry_type, tickets, \
    tickets_equivalent, amount_cents, currency, metadata, task_id";

const BALANCE_COLUMNS: &str =
    "organizer_id, currency, tickets, tickets_equivalent, assigned_cents, paid_cents";

/// A balance row moves by the inserted values, answering its new totals.
const BALANCE_UPSERT: &str = "ON CONFLICT (organizer_id, currency) DO UPDATE SET \
    tickets = b.tickets + EXCLUDED.tickets, \
    tickets_equivalent = b.tickets_equivalent + EXCLUDED.tickets_equivalent, \
    assigned_cents = b.assigned_cents + EXCLUDED.assigned_cents, \
    paid_cents = b.paid_cents + EXCLUDED.paid_cents, updated_at = now() \
    RETURNING organizer_id, currency, tickets, tickets_equivalent, assigned_cents, paid_cents";

fn entry_of(row: &PgRow) -> Result<Entry, sqlx::Error> {
    Ok(Entry {
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
    })
}

fn balance_of(row: &PgRow) -> Result<Balance, sqlx::Error> {
    let assigned_cents: i64 = row.try_get("assigned_cents")?;
    let paid_cents: i64 = row.try_get("paid_cents")?;
    Ok(Balance {
        organizer_id: row.try_get("organizer_id")?,
        currency: row.try_get::<String, _>("currency")?,
        tickets: row.try_get("tickets")?,
        tickets_equivalent: row.try_get("tickets_equivalent")?,
        assigned_cents,
        paid_cents,
        debt_cents: assigned_cents - paid_cents,
    })
}

/// Writes entries (in their order) with one `INSERT` (the roll-up triggers fire once for
/// all of them) and moves each organizer's balance by their sum with one upsert; returns
/// each entry with its organizer's balance right after it, as if they had been written one
/// by one. Call inside the transaction that completes their tasks.
pub async fn record_many(
    conn: &mut PgConnection,
    entries: &[NewEntry],
) -> Result<Vec<(Entry, Balance)>, sqlx::Error> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = entries.iter().map(|_| Uuid::now_v7()).collect();
    let rows = sqlx::query(&format!(
        "INSERT INTO director_ledger_entries ({ENTRY_COLUMNS}) \
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int[], \
             $6::int[], $7::int8[], $8::text[], $9::jsonb[], $10::uuid[]) \
         RETURNING {ENTRY_COLUMNS}, created_at"
    ))
    .bind(&ids)
    .bind(column(entries, |e| e.organizer_id.clone()))
    .bind(column(entries, |e| e.event_id.clone()))
    .bind(column(entries, |e| e.entry_type.as_str()))
    .bind(column(entries, |e| e.tickets))
    .bind(column(entries, |e| e.tickets_equivalent))
    .bind(column(entries, |e| e.amount_cents))
    .bind(column(entries, |e| e.currency.clone()))
    .bind(column(entries, |e| e.metadata.clone()))
    .bind(column(entries, |e| e.task_id))
    .fetch_all(&mut *conn)
    .await?;
    let mut by_id: HashMap<Uuid, Entry> = HashMap::with_capacity(rows.len());
    for row in &rows {
        let entry = entry_of(row)?;
        by_id.insert(entry.id, entry);
    }

    // Each balance row moves once, by the sum of its entries, locked in key order so two
    // transactions moving overlapping organizers never wait on each other in a circle (and
    // an upsert may not touch one row twice).
    let mut moves: BTreeMap<(&str, &str), Move> = BTreeMap::new();
    for e in entries {
        *moves
            .entry((e.organizer_id.as_str(), e.currency.as_str()))
            .or_default() += Move::of(e);
    }
    let keys: Vec<&(&str, &str)> = moves.keys().collect();
    let rows = sqlx::query(&format!(
        "INSERT INTO organizer_balances AS b ({BALANCE_COLUMNS}) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[], $5::int8[], $6::int8[]) \
         {BALANCE_UPSERT}"
    ))
    .bind(keys.iter().map(|k| k.0).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.1).collect::<Vec<_>>())
    .bind(moves.values().map(|m| m.tickets).collect::<Vec<_>>())
    .bind(moves.values().map(|m| m.tickets_equivalent).collect::<Vec<_>>())
    .bind(moves.values().map(|m| m.assigned_cents).collect::<Vec<_>>())
    .bind(moves.values().map(|m| m.paid_cents).collect::<Vec<_>>())
    .fetch_all(&mut *conn)
    .await?;
    let mut after: HashMap<(String, String), Balance> = HashMap::with_capacity(rows.len());
    for row in &rows {
        let balance = balance_of(row)?;
        after.insert(
            (balance.organizer_id.clone(), balance.currency.clone()),
            balance,
        );
    }

    // Walk back from the last entry: each one's balance is the final one minus what the
    // entries after it (same organizer and currency) added.
    let mut out = Vec::with_capacity(entries.len());
    for (e, id) in entries.iter().zip(&ids).rev() {
        let entry = by_id
            .remove(id)
            .ok_or_else(|| sqlx::Error::Protocol("ledger insert lost an entry".into()))?;
        let key = (e.organizer_id.clone(), e.currency.clone());
        let balance = after
            .get_mut(&key)
            .ok_or_else(|| sqlx::Error::Protocol("balance upsert lost a row".into()))?;
        out.push((entry, balance.clone()));
        balance.undo(Move::of(e));
    }
    out.reverse();
    Ok(out)
}

impl Balance {
    /// The balance before a move.
    fn undo(&mut self, m: Move) {
        self.tickets -= m.tickets;
        self.tickets_equivalent -= m.tickets_equivalent;
        self.assigned_cents -= m.assigned_cents;
        self.paid_cents -= m.paid_cents;
        self.debt_cents = self.assigned_cents - self.paid_cents;
    }
}

/// One field of every entry, as an array parameter.
fn column<'e, T>(entries: &'e [NewEntry], field: impl Fn(&'e NewEntry) -> T) -> Vec<T> {
    entries.iter().map(field).collect()
}

/// What entries move on a balance row.
#[derive(Debug, Clone, Copy, Default)]
struct Move {
    tickets: i64,
    tickets_equivalent: i64,
    assigned_cents: i64,
    paid_cents: i64,
}

impl Move {
    fn of(e: &NewEntry) -> Self {
        let (assigned_cents, paid_cents) = match e.entry_type {
            EntryType::Payment => (0, e.amount_cents),
            _ => (e.amount_cents, 0),
        };
        Self {
            tickets: i64::from(e.tickets),
            tickets_equivalent: i64::from(e.tickets_equivalent),
            assigned_cents,
            paid_cents,
        }
    }
}

impl std::ops::AddAssign for Move {
    fn add_assign(&mut self, o: Self) {
        self.tickets += o.tickets;
        self.tickets_equivalent += o.tickets_equivalent;
        self.assigned_cents += o.assigned_cents;
        self.paid_cents += o.paid_cents;
    }
}

/// Whether the organizer exists (ledger writers fail permanently when it does not).
pub async fn organizer_exists(conn: &mut PgConnection, id: &str) -> Result<bool, sqlx::Error> {
    let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM organizers WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(found.is_some())
}
