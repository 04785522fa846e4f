//! `delivery_bulk`: one parent task that sends to many guests of an event (thousands).
//!
//! It creates one `delivery` (row + child task) per eligible guest, `DELIVERY_BULK_BATCH`
//! per transaction, then follows its children: progress is children finished / total, the
//! result counts them (sent, failed, dead). The children's rows are unique per
//! (bulk task, guest), so a parent that runs again never sends to a guest twice. Cancelling
//! the parent cancels the children that have not started (its terminal hook).
//!
//! The parent never holds a slot of the `deliveries` queue while its children need one:
//! after the fan-out, and at each later check, it gives its slot back and waits
//! (`JobError::Waiting`, no attempt used) until its next check, so a queue with one slot,
//! or as many bulk sends as slots, still sends.

use std::{collections::BTreeSet, time::Duration};

use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Row;
use uuid::Uuid;

use engine::{kind::Ended, retry::Backoff, store, Done, JobError, Kind, KindInfo, TaskStatus};
use sqlx::PgConnection;

use super::delivery;
use crate::{
    deliveries::{self, Channel, MessageKind},
    queues, Ctx, Services, ServicesExt,
};

pub const NAME: &str = "delivery_bulk";
/// Most guest ids one request may name.
pub const MAX_GUEST_IDS: usize = 10_000;
/// Between two checks of the children, the parent waits without a worker slot.
const RECHECK: Duration = Duration::from_secs(1);
/// The parent's stage once every child exists: a later run goes straight to checking.
const SENDING: &str = "sending";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkParams {
    pub event_id: String,
    pub channel: Channel,
    pub kind: MessageKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// `None` = every guest of the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_ids: Option<Vec<String>>,
}

/// The `delivery_bulk` kind.
pub struct DeliveryBulk;

impl Kind for DeliveryBulk {
    type State = Services;
    const NAME: &'static str = NAME;
    const QUEUE: &'static str = queues::DELIVERIES;
    const MAX_ATTEMPTS: i32 = 3;
    // One fan-out or one check per attempt: never hours (the waiting happens between
    // attempts, without a slot).
    const TIMEOUT: Duration = Duration::from_secs(30 * 60);
    const BACKOFF: Backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(60));

    async fn run(ctx: Ctx) -> Result<Done, JobError> {
        run(ctx).await
    }

    /// Cancelling the parent, however it was cancelled (it waits between checks without a
    /// worker, so the api's cancel may be what ends it), cancels its children that have not
    /// started, failing their deliveries, and asks the running ones to stop.
    async fn on_terminal_failure(
        conn: &mut PgConnection,
        ended: &Ended,
    ) -> Result<(), sqlx::Error> {
        if ended.status != TaskStatus::Cancelled {
            return Ok(());
        }
        let children = deliveries::store::children_of(&mut *conn, ended.id).await?;
        let cancelled = store::cancel_children(conn, &children).await?;
        let error = json!({ "code": "cancelled", "message": "the delivery task was cancelled" });
        deliveries::store::fail_unsent(&mut *conn, &cancelled, &error).await
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    total: i64,
    done: i64,
    sent: i64,
    failed: i64,
    dead: i64,
    cancelled: i64,
}

async fn counts(ctx: &Ctx) -> Result<Counts, sqlx::Error> {
    let r = sqlx::query(
        "SELECT count(*) AS total, \
             count(*) FILTER (WHERE t.status IN ('completed', 'failed', 'dead', 'cancelled')) AS done, \
             count(*) FILTER (WHERE t.status = 'completed') AS sent, \
             count(*) FILTER (WHERE t.status = 'failed') AS failed, \
             count(*) FILTER (WHERE t.status = 'dead') AS dead, \
             count(*) FILTER (WHERE t.status = 'cancelled') AS cancelled \
         FROM deliveries d JOIN tasks t ON t.id = d.task_id WHERE d.bulk_task_id = $1",
    )
    .bind(ctx.id)
    .fetch_one(ctx.pool())
    .await?;
    Ok(Counts {
        total: r.try_get("total")?,
        done: r.try_get("done")?,
        sent: r.try_get("sent")?,
        failed: r.try_get("failed")?,
        dead: r.try_get("dead")?,
        cancelled: r.try_get("cancelled")?,
    })
}

/// Guests of the bulk send: those with the channel's contact, those without it, and ids
/// that name no guest of the event.
struct Audience {
    eligible: Vec<String>,
    skipped: Vec<String>,
    missing: Vec<String>,
}

async fn audience(ctx: &Ctx, p: &BulkParams) -> Result<Audience, JobError> {
    let rows = sqlx::query(
        "SELECT id, email, phone FROM guests \
         WHERE event_id = $1 AND ($2::text[] IS NULL OR id = ANY($2)) ORDER BY id",
    )
    .bind(&p.event_id)
    .bind(&p.guest_ids)
    .fetch_all(ctx.pool())
    .await?;
    let mut eligible = Vec::with_capacity(rows.len());
    let mut skipped = Vec::new();
    let mut found = BTreeSet::new();
    for r in &rows {
        let id: String = r.try_get("id")?;
        let contact: Option<String> = r.try_get(p.channel.contact_field())?;
        found.insert(id.clone());
        if contact.is_some_and(|c| !c.trim().is_empty()) {
            eligible.push(id);
        } else {
            skipped.push(id);
        }
    }
    let missing = p
        .guest_ids
        .iter()
        .flatten()
        .filter(|g| !found.contains(*g))
        .cloned()
        .collect();
    Ok(Audience {
        eligible,
        skipped,
        missing,
    })
}

/// The stage recorded on the parent's row (`SENDING` once the fan-out committed).
async fn stage(ctx: &Ctx) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT stage FROM tasks WHERE id = $1")
        .bind(ctx.id)
        .fetch_one(ctx.pool())
        .await
}

async fn run(ctx: Ctx) -> Result<Done, JobError> {
    let p: BulkParams = ctx.params()?;
    if stage(&ctx).await?.as_deref() != Some(SENDING) {
        let audience = audience(&ctx, &p).await?;
        fan_out(&ctx, &p, &audience.eligible).await?;
        ctx.progress(0, SENDING).await;
    }
    let c = counts(&ctx).await?;
    if c.done < c.total {
        ctx.check_cancel().await?;
        ctx.progress((c.done * 100 / c.total) as u8, SENDING).await;
        return Err(JobError::Waiting {
            reason: SENDING.into(),
            after: RECHECK,
        });
    }
    let Audience {
        skipped, missing, ..
    } = audience(&ctx, &p).await?;
    Ok(Done::Result(json!({
        "eventId": p.event_id,
        "channel": p.channel,
        "kind": p.kind,
        "total": c.total,
        "sent": c.sent,
        "failed": c.failed,
        "dead": c.dead,
        "cancelled": c.cancelled,
        "skipped": { "count": skipped.len(), "reason": format!("no {}", p.channel.contact_field()), "guestIds": skipped.iter().take(100).collect::<Vec<_>>() },
        "missing": { "count": missing.len(), "guestIds": missing.iter().take(100).collect::<Vec<_>>() },
    })))
}

/// Creates the children: a delivery row and its task per eligible guest, a batch per
/// transaction. Guests that already have their delivery from an earlier run get none.
async fn fan_out(ctx: &Ctx, p: &BulkParams, eligible: &[String]) -> Result<(), JobError> {
    ctx.progress(0, "fanout").await;
    let child = KindInfo::of::<delivery::Delivery>();
    let batch = ctx.config().deliveries.bulk_batch.max(1);
    for chunk in eligible.chunks(batch) {
        ctx.check_cancel().await?;
        let ids: Vec<Uuid> = chunk.iter().map(|_| Uuid::now_v7()).collect();
        let mut tx = ctx.pool().begin().await?;
        // Conflict rows are skipped and only new ones get a task.
        let created = sqlx::query(
            "INSERT INTO deliveries (id, event_id, guest_id, channel, kind, template, status, task_id, bulk_task_id) \
             SELECT u.id, $3, u.guest_id, $4, $5, $6, 'queued', u.id, $7 \
             FROM unnest($1::uuid[], $2::text[]) AS u(id, guest_id) \
             ON CONFLICT (bulk_task_id, guest_id) WHERE bulk_task_id IS NOT NULL DO NOTHING \
             RETURNING id, guest_id",
        )
        .bind(&ids)
        .bind(chunk)
        .bind(&p.event_id)
        .bind(p.channel.as_str())
        .bind(p.kind.as_str())
        .bind(&p.template)
        .bind(ctx.id)
        .fetch_all(&mut *tx)
        .await?;
        let mut task_ids = Vec::with_capacity(created.len());
        let mut params = Vec::with_capacity(created.len());
        for r in created {
            task_ids.push(r.try_get::<Uuid, _>("id")?);
            let params_value = serde_json::to_value(delivery::DeliveryParams {
                event_id: p.event_id.clone(),
                guest_id: r.try_get("guest_id")?,
                channel: p.channel,
                kind: p.kind,
                template: p.template.clone(),
            })
            .map_err(|e| JobError::permanent("invalid_params", e.to_string()))?;
            params.push(params_value);
        }
        store::insert_many_in_tx(
            &mut tx,
            &task_ids,
            &params,
            child,
            &ctx.requester,
            ctx.config().task_ttl,
        )
        .await?;
        tx.commit().await?;
    }
    Ok(())
}
