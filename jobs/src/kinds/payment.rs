//! `payment`: a payment received from an organizer (`POST /director/payments`, seeds/000).
//! Writes a `payment` ledger entry and moves the balance in the task's own transaction; a
//! payment above the open debt is accepted and shows as credit (negative debt).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use std::time::Duration;

use engine::{retry::Backoff, Done, JobError, Kind};

use super::kpi_refresh;
use crate::{
    domain::ledger::{self, EntryType, NewEntry},
    Ctx, Services,
};

pub const NAME: &str = "payment";
/// Largest single payment: 100,000,000.00.
pub const MAX_AMOUNT_CENTS: i64 = 10_000_000_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentParams {
    pub organizer_id: String,
    pub amount_cents: i64,
    /// ISO 4217, upper case.
    pub currency: String,
    #[serde(default)]
    pub metadata: Value,
}

/// The `payment` kind: a ledger writer (see [`super::ledger_writer`]).
pub struct Payment;

impl Kind for Payment {
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
    let p: PaymentParams = ctx.params()?;
    let mut tx = ctx.pool().begin().await?;
    super::require_organizer(&mut tx, &p.organizer_id).await?;
    let (entry, balance) = ledger::record(
        &mut tx,
        &NewEntry {
            organizer_id: p.organizer_id.clone(),
            event_id: None,
            entry_type: EntryType::Payment,
            tickets: 0,
            tickets_equivalent: 0,
            amount_cents: p.amount_cents,
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
    let done = ctx
        .complete_in(tx, json!({ "entry": entry, "balance": balance }))
        .await?;
    kpi_refresh::after_ledger_write(&ctx).await;
    Ok(done)
}
