//! The rows of each report. The ledger is streamed straight from Postgres (it can hold
//! millions of rows); the other reports are aggregates, at most one row per organizer or
//! event, read with the synchronous reports' own queries so both always agree.

use futures::{Stream, StreamExt};
use serde_json::Value;
use sqlx::{PgConnection, PgPool, Row as _};

use super::{
    table::{col, Cell, Column, ColumnKind::*, Row},
    Filters, Report,
};
use crate::domain::reports;

pub const LEDGER: &[Column] = &[
    col("id", Text, 38),
    col("createdAt", DateTime, 20),
    col("organizerId", Text, 16),
    col("eventId", Text, 16),
    col("entryType", Text, 16),
    col("tickets", Int, 9),
    col("ticketsEquivalent", Int, 18),
    col("amount", Money, 14),
    col("amountCents", Int, 14),
    col("currency", Text, 9),
];

pub const TOP_ORGANIZERS: &[Column] = &[
    col("rank", Int, 6),
    col("organizerId", Text, 16),
    col("ticketsEquivalent", Int, 18),
    col("assignedValue", Money, 16),
    col("assignedValueCents", Int, 18),
    col("lastActivityAt", DateTime, 20),
];

pub const TICKETS_USAGE: &[Column] = &[
    col("eventId", Text, 16),
    col("eventName", Text, 30),
    col("eventType", Text, 10),
    col("ticketsAssigned", Int, 16),
    col("ticketsEquivalent", Int, 18),
    col("assignedValue", Money, 16),
    col("assignedValueCents", Int, 18),
    col("lastMovementAt", DateTime, 20),
];

pub const DEBT_AGING: &[Column] = &[
    col("bucket", Text, 8),
    col("amount", Money, 16),
    col("amountCents", Int, 16),
    col("count", Int, 10),
];

pub const OVERVIEW: &[Column] = &[
    col("metric", Text, 28),
    col("status", Text, 12),
    col("value", Int, 16),
];

pub fn columns(report: Report) -> &'static [Column] {
    match report {
        Report::Ledger => LEDGER,
        Report::TopOrganizers => TOP_ORGANIZERS,
        Report::TicketsUsage => TICKETS_USAGE,
        Report::DebtAging => DEBT_AGING,
        Report::Overview => OVERVIEW,
    }
}

const LEDGER_WHERE: &str = "WHERE ($1::text IS NULL OR l.organizer_id = $1) \
      AND ($2::date IS NULL OR l.created_at >= $2::date) \
      AND ($3::date IS NULL OR l.created_at < $3::date + 1) \
      AND ($4::text IS NULL OR l.event_id = $4) \
      AND ($5::text IS NULL OR l.currency = $5) \
      AND ($6::text IS NULL OR EXISTS (SELECT 1 FROM events e WHERE e.id = l.event_id AND e.type = $6))";

fn ledger_currency(f: &Filters) -> Option<&str> {
    f.currency_requested.then_some(f.currency.as_str())
}

/// Prepares the export's own connection. Reading the ledger newest first either follows the
/// `created_at` index (cheap when rows sit on disk in time order, as an append-only ledger
/// does) or sorts; with the default 4 MB of work_mem a million-row sort spills to disk and
/// the planner prefers the index even where that means random reads. Per export connection
/// only (it closes afterwards), and exports run a few at a time. The ledger streams for as
/// long as the file takes to write: its statement may run up to the export's own timeout
/// (30 min), not the pool's.
pub async fn prepare(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SET work_mem = '256MB'")
        .execute(&mut *conn)
        .await?;
    sqlx::query("SET statement_timeout = '30min'")
        .execute(conn)
        .await?;
    Ok(())
}

/// How many ledger rows the export will hold (for progress; `limit` applies).
pub async fn ledger_count(conn: &mut PgConnection, f: &Filters) -> Result<i64, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM director_ledger_entries l {LEDGER_WHERE}"
    ))
    .bind(&f.organizer_id)
    .bind(f.from)
    .bind(f.to)
    .bind(&f.event_id)
    .bind(ledger_currency(f))
    .bind(&f.event_type)
    .fetch_one(conn)
    .await?;
    Ok(f.limit.map_or(n, |l| n.min(l)))
}

/// The ledger entries matching `f`, newest first like `GET /director/organizers/:id/ledger`,
/// as rows arrive from the server (nothing is collected).
pub fn ledger_rows<'c>(
    conn: &'c mut PgConnection,
    f: &'c Filters,
    sql: &'c str,
) -> impl Stream<Item = Result<Row, sqlx::Error>> + 'c {
    sqlx::query(sql)
        .bind(&f.organizer_id)
        .bind(f.from)
        .bind(f.to)
        .bind(&f.event_id)
        .bind(ledger_currency(f))
        .bind(&f.event_type)
        .bind(f.limit.unwrap_or(i64::MAX))
        .fetch(conn)
        .map(|r| {
            let r = r?;
            Ok(vec![
                Cell::Uuid(r.try_get("id")?),
                Cell::DateTime(r.try_get("created_at")?),
                Cell::Text(r.try_get("organizer_id")?),
                r.try_get::<Option<String>, _>("event_id")?
                    .map_or(Cell::Null, Cell::Text),
                Cell::Text(r.try_get("entry_type")?),
                Cell::Int(r.try_get::<i32, _>("tickets")?.into()),
                Cell::Int(r.try_get::<i32, _>("tickets_equivalent")?.into()),
                Cell::Money(r.try_get("amount_cents")?),
                Cell::Int(r.try_get("amount_cents")?),
                Cell::Text(r.try_get("currency")?),
            ])
        })
}

/// The statement behind [`ledger_rows`].
pub fn ledger_sql() -> String {
    format!(
        "SELECT l.id, l.created_at, l.organizer_id, l.event_id, l.entry_type, l.tickets, \
                l.tickets_equivalent, l.amount_cents, l.currency::text AS currency \
         FROM director_ledger_entries l {LEDGER_WHERE} \
         ORDER BY l.created_at DESC, l.id DESC LIMIT $7"
    )
}

/// An aggregate report's rows, from the same query the synchronous endpoint runs.
pub async fn report_rows(
    pool: &PgPool,
    report: Report,
    f: &Filters,
) -> Result<Vec<Row>, sqlx::Error> {
    let q = f.to_query();
    let json = match report {
        Report::TopOrganizers => reports::top_organizers(pool, &q).await?,
        Report::TicketsUsage => reports::tickets_usage(pool, &q).await?,
        Report::DebtAging => reports::debt_aging(pool, &q).await?,
        Report::Overview => reports::overview(pool, &q).await?,
        Report::Ledger => return Ok(Vec::new()),
    };
    let data = json["data"].as_array().cloned().unwrap_or_default();
    Ok(match report {
        Report::TopOrganizers => data
            .iter()
            .enumerate()
            .map(|(i, d)| {
                vec![
                    Cell::Int(i as i64 + 1),
                    text(&d["organizerId"]),
                    int(&d["ticketsEquivalent"]),
                    money(&d["assignedValueCents"]),
                    int(&d["assignedValueCents"]),
                    time(&d["lastActivityAt"]),
                ]
            })
            .collect(),
        Report::TicketsUsage => data
            .iter()
            .map(|d| {
                vec![
                    text(&d["eventId"]),
                    text(&d["eventName"]),
                    text(&d["eventType"]),
                    int(&d["ticketsAssigned"]),
                    int(&d["ticketsEquivalent"]),
                    money(&d["assignedValueCents"]),
                    int(&d["assignedValueCents"]),
                    time(&d["lastMovementAt"]),
                ]
            })
            .collect(),
        Report::DebtAging => data
            .iter()
            .map(|d| {
                vec![
                    text(&d["bucket"]),
                    money(&d["amountCents"]),
                    int(&d["amountCents"]),
                    int(&d["count"]),
                ]
            })
            .collect(),
        Report::Overview => {
            let mut rows = Vec::new();
            for d in &data {
                match d["breakdown"].as_array() {
                    Some(items) => {
                        rows.extend(items.iter().map(|b| {
                            vec![text(&d["metric"]), text(&b["status"]), int(&b["count"])]
                        }))
                    }
                    None => rows.push(vec![text(&d["metric"]), Cell::Null, int(&d["value"])]),
                }
            }
            rows
        }
        Report::Ledger => Vec::new(),
    })
}

fn text(v: &Value) -> Cell {
    v.as_str().map_or(Cell::Null, |s| Cell::Text(s.to_string()))
}

fn int(v: &Value) -> Cell {
    v.as_i64().map_or(Cell::Null, Cell::Int)
}

fn money(v: &Value) -> Cell {
    v.as_i64().map_or(Cell::Null, Cell::Money)
}

fn time(v: &Value) -> Cell {
    v.as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map_or(Cell::Null, |t| {
            Cell::DateTime(t.with_timezone(&chrono::Utc))
        })
}
