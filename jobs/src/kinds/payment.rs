//! `payment`: a payment received from an organizer (`POST /director/payments`, seeds/000).
//! Writes a `payment` ledger entry and moves the balance in the task's own transaction; a
//! payment above the open debt is accepted and shows as credit (negative debt).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{kpi_refresh, KindSpec};
use crate::{
    domain::ledger::{self, EntryType, NewEntry},
    queue,
    task::{
        context::{Done, JobError, TaskContext},
        retry::Backoff,
    },
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

pub fn spec() -> KindSpec {
    KindSpec::new(
        NAME,
        queue::ASSIGNMENTS,
        5,
        Duration::from_secs(30),
        Backoff::new(Duration::from_secs(1), Duration::from_secs(60)),
        run,
    )
}

async fn run(ctx: TaskContext) -> Result<Done, JobError> {
    let p: PaymentParams = ctx.params()?;
    let mut tx = ctx.pool().begin().await?;
    if !ledger::organizer_exists(&mut tx, &p.organizer_id).await? {
        return Err(JobError::permanent(
            "organizer_not_found",
            format!("organizer {:?} does not exist", p.organizer_id),
        ));
    }
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
