//! `assignment`: tickets assigned to an organizer for an event, prepaid or on loan
//! (`POST /director/assign`, seeds/000).
//!
//! The worker reads the event's type, converts tickets to equivalents
//! (`tickets × TICKET_PREMIUM_FACTOR` for premium events), writes the ledger entry, moves
//! the organizer's balance and completes the task, all in one transaction, shared with the
//! other assignments finishing at the same time (a group commit, `engine::group`).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use engine::{retry::Backoff, Done, GroupWrite, JobError, Kind};
use futures::future::BoxFuture;
use sqlx::PgConnection;

use crate::{
    domain::ledger::{self, EntryType, NewEntry},
    Ctx, Services, ServicesExt,
};

pub const NAME: &str = "assignment";
pub const MAX_TICKETS: i64 = 1_000_000;
/// Highest unit price accepted: 1,000,000.00.
pub const MAX_PRICE_CENTS: i64 = 100_000_000;
/// Longest organizer or event id.
pub const MAX_ID_LEN: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AssignmentType {
    Prepaid,
    Loan,
}

impl AssignmentType {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "prepaid" => Some(Self::Prepaid),
            "loan" => Some(Self::Loan),
            _ => None,
        }
    }

    fn entry_type(self) -> EntryType {
        match self {
            Self::Prepaid => EntryType::AssignPrepaid,
            Self::Loan => EntryType::AssignLoan,
        }
    }
}

/// Validated, normalized params, as stored in the task row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignmentParams {
    pub organizer_id: String,
    pub event_id: String,
    #[serde(rename = "type")]
    pub assignment_type: AssignmentType,
    pub tickets: i32,
    /// Unit price in cents.
    pub price_cents: i64,
    pub currency: String,
    #[serde(default)]
    pub metadata: Value,
}

/// Why an id is not acceptable, or `None` if it is: 1–64 characters of letters, digits and
/// `_ - . :`.
pub fn id_problem(id: &str) -> Option<&'static str> {
    if id.is_empty() {
        Some("must not be empty")
    } else if id.chars().count() > MAX_ID_LEN {
        Some("must be at most 64 characters")
    } else if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
    {
        Some("may only contain letters, digits, '_', '-', '.' and ':'")
    } else {
        None
    }
}

/// The `assignment` kind: a ledger writer (see [`super::ledger_writer`]).
pub struct Assignment;

impl Kind for Assignment {
    type State = Services;
    const NAME: &'static str = NAME;
    const QUEUE: &'static str = super::ledger_writer::QUEUE;
    const MAX_ATTEMPTS: i32 = super::ledger_writer::MAX_ATTEMPTS;
    const TIMEOUT: Duration = super::ledger_writer::TIMEOUT;
    const BACKOFF: Backoff = super::ledger_writer::BACKOFF;

    async fn run(ctx: Ctx) -> Result<Done, JobError> {
        run(ctx).await
    }
}

async fn run(ctx: Ctx) -> Result<Done, JobError> {
    let params: AssignmentParams = ctx.params()?;
    let factor = ctx.config().ticket_premium_factor;
    let writer = move || AssignmentWriter { factor };
    let pending = Pending {
        task_id: ctx.id,
        params,
    };
    let done = ctx.complete_in_group(writer, pending).await?;
    super::kpi_refresh::after_ledger_write(&ctx).await;
    Ok(done)
}

/// One task's assignment, waiting for its group's transaction.
pub struct Pending {
    task_id: uuid::Uuid,
    params: AssignmentParams,
}

/// Writes the ledger entries of a group of assignments in one transaction (see
/// [`engine::group`]): one read of their events and organizers, one `INSERT` of their
/// entries, one upsert of the balances they move.
struct AssignmentWriter {
    /// `TICKET_PREMIUM_FACTOR`.
    factor: i64,
}

impl GroupWrite for AssignmentWriter {
    type Item = Pending;

    fn write<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        items: &'a [&'a Pending],
    ) -> BoxFuture<'a, Result<Vec<Result<Value, JobError>>, sqlx::Error>> {
        Box::pin(async move {
            let event_ids: Vec<&str> = items.iter().map(|p| p.params.event_id.as_str()).collect();
            let organizer_ids: Vec<&str> = items
                .iter()
                .map(|p| p.params.organizer_id.as_str())
                .collect();
            let events: HashMap<String, String> =
                sqlx::query_as("SELECT id, type FROM events WHERE id = ANY($1)")
                    .bind(&event_ids)
                    .fetch_all(&mut *tx)
                    .await?
                    .into_iter()
                    .collect();
            let organizers: HashSet<String> =
                sqlx::query_scalar("SELECT id FROM organizers WHERE id = ANY($1)")
                    .bind(&organizer_ids)
                    .fetch_all(&mut *tx)
                    .await?
                    .into_iter()
                    .collect();
            let checked: Vec<Result<(NewEntry, &str), JobError>> = items
                .iter()
                .map(|p| self.entry(p, &events, &organizers))
                .collect();
            let entries: Vec<NewEntry> = checked
                .iter()
                .filter_map(|c| c.as_ref().ok().map(|(e, _)| e.clone()))
                .collect();
            let mut recorded = ledger::record_many(tx, &entries).await?.into_iter();
            Ok(checked
                .into_iter()
                .map(|c| {
                    let (_, event_type) = c?;
                    let (entry, balance) = recorded.next().ok_or_else(|| {
                        JobError::retryable("ledger_error", "the ledger returned fewer entries")
                    })?;
                    Ok(json!({ "entry": entry, "eventType": event_type, "balance": balance }))
                })
                .collect())
        })
    }
}

impl AssignmentWriter {
    /// The entry one assignment writes, with its event's type, or why it cannot be written
    /// (for good: a missing event or organizer, amounts beyond the ledger's columns).
    fn entry<'e>(
        &self,
        p: &Pending,
        events: &'e HashMap<String, String>,
        organizers: &HashSet<String>,
    ) -> Result<(NewEntry, &'e str), JobError> {
        let a = &p.params;
        let Some(event_type) = events.get(&a.event_id) else {
            return Err(JobError::permanent(
                "event_not_found",
                format!("event {:?} does not exist", a.event_id),
            ));
        };
        if !organizers.contains(&a.organizer_id) {
            return Err(super::organizer_not_found(&a.organizer_id));
        }
        let factor = if event_type == "premium" {
            self.factor
        } else {
            1
        };
        let equivalent = i64::from(a.tickets) * factor;
        let amount = i64::from(a.tickets).checked_mul(a.price_cents);
        let (Ok(equivalent), Some(amount_cents)) = (i32::try_from(equivalent), amount) else {
            return Err(JobError::permanent(
                "amount_out_of_range",
                "tickets × price or tickets × factor does not fit the ledger",
            ));
        };
        let entry = NewEntry {
            organizer_id: a.organizer_id.clone(),
            event_id: Some(a.event_id.clone()),
            entry_type: a.assignment_type.entry_type(),
            tickets: a.tickets,
            tickets_equivalent: equivalent,
            amount_cents,
            currency: a.currency.clone(),
            metadata: if a.metadata.is_null() {
                json!({})
            } else {
                a.metadata.clone()
            },
            task_id: p.task_id,
        };
        Ok((entry, event_type.as_str()))
    }
}
