//! `payment_webhook` (queue `webhooks`): applies one provider event, already verified and
//! stored by the api (`payment_events`, unique per provider and event id), to its payment.
//!
//! A payment only moves forward ([`PaymentStatus::rank`]): events arrive repeated and out of
//! order, and a late `processing` never overwrites `succeeded`. When an organizer's payment
//! succeeds, its director ledger `payment` entry is written in the transaction that completes
//! this task, so the debt, the ledger and the overview see it exactly once; when a recorded
//! payment is refunded, the entry that reverses it is written the same way.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use engine::{retry::Backoff, Done, JobError, Kind};

use super::kpi_refresh;
use crate::{
    domain::ledger::{self, EntryType, NewEntry},
    payments::{self, conekta, store, PaymentStatus, Provider},
    queues, Ctx, Services, ServicesExt,
};

pub const NAME: &str = "payment_webhook";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookParams {
    pub provider: Provider,
    pub event_id: String,
}

/// The `payment_webhook` kind.
pub struct PaymentWebhook;

impl Kind for PaymentWebhook {
    type State = Services;
    const NAME: &'static str = NAME;
    const QUEUE: &'static str = queues::WEBHOOKS;
    // An event may arrive before the intent's row commits: a few retries cover that race.
    const MAX_ATTEMPTS: i32 = 8;
    const TIMEOUT: Duration = Duration::from_secs(30);
    const BACKOFF: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));

    async fn run(ctx: Ctx) -> Result<Done, JobError> {
        let p: WebhookParams = ctx.params()?;
        let body = {
            let mut conn = ctx.pool().acquire().await?;
            store::event_body(&mut conn, p.provider, &p.event_id).await?
        };
        let Some(body) = body else {
            return Err(JobError::permanent(
                "event_not_found",
                format!("no stored {} event {:?}", p.provider.as_str(), p.event_id),
            ));
        };
        let mut event = payments::parse_event(p.provider, &body)
            .map_err(|e| JobError::permanent("malformed_event", e.to_string()))?;
        if p.provider == Provider::Conekta && event.status.is_some() {
            // A Conekta event is a hint: the order as Conekta's API shows it now decides (what
            // Conekta's own plugin does), outside the transaction (a network call).
            let cfg = &ctx.config().payments;
            if cfg.conekta_api_key.is_none() {
                return Err(JobError::permanent(
                    "conekta_not_configured",
                    "a Conekta event cannot be confirmed without CONEKTA_API_KEY",
                ));
            }
            let (status, amount, raw) =
                conekta::current_order(&ctx.state().payments_http, cfg, &event.provider_ref)
                    .await
                    .map_err(super::payment_intent::to_job_error)?;
            event.status = Some(status);
            event.amount_cents = Some(amount);
            event.raw = raw;
        }
        let mut tx = ctx.pool().begin().await?;
        let Some(reported) = event.status else {
            let result = json!({ "eventId": event.event_id, "kind": event.kind, "moved": false,
                                 "reason": "the event moves no payment" });
            return ctx.complete_in(tx, result).await;
        };
        let Some(payment) = store::lock_by_ref(&mut tx, p.provider, &event.provider_ref).await?
        else {
            return Err(JobError::retryable(
                "payment_not_found",
                format!(
                    "no {} payment {:?} (yet): the event is retried",
                    p.provider.as_str(),
                    event.provider_ref
                ),
            ));
        };
        if event
            .amount_cents
            .is_some_and(|a| a != payment.amount_cents)
        {
            return Err(JobError::permanent(
                "amount_mismatch",
                format!(
                    "the event reports {} minor units, the payment is of {}",
                    event.amount_cents.unwrap_or_default(),
                    payment.amount_cents
                ),
            ));
        }
        let current: PaymentStatus = serde_json::from_value(Value::String(payment.status.clone()))
            .map_err(|e| JobError::permanent("invalid_payment_status", e.to_string()))?;
        let moved = reported.rank() > current.rank();
        let mut ledger_written = false;
        if moved {
            let effect = match ledger_move(&payment, reported) {
                Some(LedgerMove {
                    organizer,
                    amount_cents,
                    effect,
                }) => {
                    super::require_organizer(&mut tx, organizer).await?;
                    let (entry, _) = ledger::record(
                        &mut tx,
                        &NewEntry {
                            organizer_id: organizer.to_string(),
                            event_id: None,
                            entry_type: EntryType::Payment,
                            tickets: 0,
                            tickets_equivalent: 0,
                            amount_cents,
                            currency: payment.currency.clone(),
                            metadata: json!({ "paymentId": payment.id,
                                              "provider": payment.provider,
                                              "providerRef": payment.provider_ref,
                                              "reverses": payment.ledger_entry_id }),
                            task_id: ctx.id,
                        },
                    )
                    .await?;
                    ledger_written = true;
                    Some(effect(entry.id))
                }
                None => None,
            };
            store::set_status(&mut tx, payment.id, reported, &event.raw, effect).await?;
        }
        store::mark_applied(&mut tx, p.provider, &event.event_id, payment.id, moved).await?;
        let result = json!({
            "paymentId": payment.id,
            "eventId": event.event_id,
            "kind": event.kind,
            "moved": moved,
            "status": if moved { reported } else { current },
            "ledgerEntryWritten": ledger_written,
        });
        let done = ctx.complete_in(tx, result).await?;
        if ledger_written {
            kpi_refresh::after_ledger_write(&ctx).await;
        }
        Ok(done)
    }
}

struct LedgerMove<'a> {
    organizer: &'a str,
    amount_cents: i64,
    effect: fn(uuid::Uuid) -> store::LedgerEffect,
}

/// The director ledger entry a move of `payment` to `reported` writes, if any: the organizer's
/// payment when it succeeds, and its reversal (the opposite amount) when a payment that was
/// recorded is refunded. Each happens once: a payment only moves forward, under its row lock.
fn ledger_move(payment: &store::Payment, reported: PaymentStatus) -> Option<LedgerMove<'_>> {
    let organizer = payment.organizer_id.as_deref()?;
    match reported {
        PaymentStatus::Succeeded if payment.ledger_entry_id.is_none() => Some(LedgerMove {
            organizer,
            amount_cents: payment.amount_cents,
            effect: store::LedgerEffect::Paid,
        }),
        PaymentStatus::Refunded
            if payment.ledger_entry_id.is_some() && payment.refund_entry_id.is_none() =>
        {
            Some(LedgerMove {
                organizer,
                amount_cents: -payment.amount_cents,
                effect: store::LedgerEffect::Reversed,
            })
        }
        _ => None,
    }
}
