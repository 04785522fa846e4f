//! `assignment`: tickets assigned to an organizer for an event, prepaid or on loan
//! (`POST /director/assign`, seeds/000).
//!
//! The worker reads the event's type, converts tickets to equivalents
//! (`tickets × TICKET_PREMIUM_FACTOR` for premium events), writes the ledger entry, moves
//! the organizer's balance and completes the task, all in one transaction.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use std::time::Duration;

use engine::{retry::Backoff, Done, JobError, Kind};

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
    let p: AssignmentParams = ctx.params()?;
    let mut tx = ctx.pool().begin().await?;

    let event_type: Option<String> = sqlx::query_scalar("SELECT type FROM events WHERE id = $1")
        .bind(&p.event_id)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(event_type) = event_type else {
        return Err(JobError::permanent(
            "event_not_found",
            format!("event {:?} does not exist", p.event_id),
        ));
    };
    super::require_organizer(&mut tx, &p.organizer_id).await?;

    let factor = if event_type == "premium" {
        ctx.config().ticket_premium_factor
    } else {
        1
    };
    let equivalent = i64::from(p.tickets) * factor;
    let amount = i64::from(p.tickets).checked_mul(p.price_cents);
    let (Ok(equivalent), Some(amount_cents)) = (i32::try_from(equivalent), amount) else {
        return Err(JobError::permanent(
            "amount_out_of_range",
            "tickets × price or tickets × factor does not fit the ledger",
        ));
    };

    let (entry, balance) = ledger::record(
        &mut tx,
        &NewEntry {
            organizer_id: p.organizer_id.clone(),
            event_id: Some(p.event_id.clone()),
            entry_type: p.assignment_type.entry_type(),
            tickets: p.tickets,
            tickets_equivalent: equivalent,
            amount_cents,
            currency: p.currency.clone(),
            metadata: if p.metadata.is_null() {
                json!({})
            } else {
                p.metadata.clone()
            },
            task_id: ctx.id,
        },
    )
    .await?;
    let result = json!({
        "entry": entry,
        "eventType": event_type,
        "balance": balance,
    });
    let done = ctx.complete_in(tx, result).await?;
    super::kpi_refresh::after_ledger_write(&ctx).await;
    Ok(done)
}
