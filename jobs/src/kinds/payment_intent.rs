//! `payment_intent` (`POST /payments/intent`, queue `webhooks`): creates the intent at the
//! provider and stores its `payments` row, whose id is this task's id. The provider call is
//! idempotent on that id (Stripe's `Idempotency-Key`; the others by our reference), so an
//! attempt that dies after the call and before the commit creates nothing twice.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use engine::{retry::Backoff, Done, JobError, Kind};

use crate::{
    payments::{self, store, IntentRequest, Provider, ProviderError},
    queues, Ctx, Services, ServicesExt,
};

pub const NAME: &str = "payment_intent";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IntentParams {
    pub provider: Provider,
    pub amount_cents: i64,
    /// Upper-case ISO 4217.
    pub currency: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organizer_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub metadata: Value,
}

/// The `payment_intent` kind.
pub struct PaymentIntent;

impl Kind for PaymentIntent {
    type State = Services;
    const NAME: &'static str = NAME;
    const QUEUE: &'static str = queues::WEBHOOKS;
    const MAX_ATTEMPTS: i32 = 5;
    const TIMEOUT: Duration = Duration::from_secs(60);
    const BACKOFF: Backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(120));

    async fn run(ctx: Ctx) -> Result<Done, JobError> {
        let p: IntentParams = ctx.params()?;
        if let Some(organizer) = &p.organizer_id {
            let mut conn = ctx.pool().acquire().await?;
            super::require_organizer(&mut conn, organizer).await?;
        }
        let request = IntentRequest {
            payment_id: ctx.id,
            amount_cents: p.amount_cents,
            currency: p.currency.clone(),
            description: p.description.clone(),
            metadata: p.metadata.clone(),
        };
        let created = payments::create_intent(
            p.provider,
            &ctx.state().payments_http,
            &ctx.config().payments,
            &request,
        )
        .await
        .map_err(to_job_error)?;
        let mut tx = ctx.pool().begin().await?;
        let payment = store::insert(
            &mut tx,
            &store::NewPayment {
                id: ctx.id,
                requester: &ctx.requester,
                provider: p.provider,
                provider_ref: &created.provider_ref,
                organizer_id: p.organizer_id.as_deref(),
                amount_cents: p.amount_cents,
                currency: &p.currency,
                status: created.status,
                description: p.description.as_deref(),
                metadata: &p.metadata,
                client: &created.client,
                raw: &created.raw,
            },
        )
        .await?;
        let result = json!({
            "paymentId": payment.id,
            "provider": payment.provider,
            "providerRef": payment.provider_ref,
            "status": payment.status,
            "amountCents": payment.amount_cents,
            "currency": payment.currency,
            "client": payment.client,
            "links": { "payment": format!("/payments/{}", payment.id) },
        });
        ctx.complete_in(tx, result).await
    }
}

/// The engine's reading of a provider failure: a refusal fails the task, anything else is
/// retried (no sooner than the provider's hint).
pub(crate) fn to_job_error(e: ProviderError) -> JobError {
    match e {
        ProviderError::Refused { code, message } => JobError::Permanent { code, message },
        ProviderError::Unavailable {
            code,
            message,
            retry_after: Some(after),
        } => JobError::RetryAfter {
            code,
            message,
            after,
        },
        ProviderError::Unavailable { code, message, .. } => JobError::Retryable { code, message },
    }
}
