//! `delivery_bulk`: one parent task that sends to many guests of an event (thousands).
//!
//! It creates one `delivery` (row + child task) per eligible guest, `DELIVERY_BULK_BATCH`
//! per transaction, then follows its children: progress is children finished / total, the
//! result counts them (sent, failed, dead). The children's rows are unique per
//! (bulk task, guest), so a parent that runs again never sends to a guest twice. Cancelling
//! the parent cancels the children that have not started.

use std::{collections::BTreeSet, time::Duration};

use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Row;
use uuid::Uuid;

use super::{delivery, KindSpec};
use crate::{
    deliveries::{Channel, MessageKind},
    queue,
    task::{
        context::{Done, JobError, TaskContext},
        retry::Backoff,
        store,
    },
};

pub const NAME: &str = "delivery_bulk";
/// Most guest ids one request may name.
pub const MAX_GUEST_IDS: usize = 10_000;
const POLL: Duration = Duration::from_millis(250);

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

pub fn spec() -> KindSpec {
    KindSpec::new(
        NAME,
        queue::DELIVERIES,
        3,
        Duration::from_secs(6 * 3600),
        Backoff::new(Duration::from_secs(2), Duration::from_secs(60)),
        run,
    )
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

async fn counts(ctx: &TaskContext) -> Result<Counts, sqlx::Error> {
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

async fn run(ctx: TaskContext) -> Result<Done, JobError> {
    let p: BulkParams = ctx.params()?;
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
    let missing: Vec<&String> = p
        .guest_ids
        .iter()
        .flatten()
        .filter(|g| !found.contains(*g))
        .collect();

    ctx.progress(0, "fanout").await;
    let child = delivery::spec();
    let batch = ctx.config().deliveries.bulk_batch.max(1);
    for chunk in eligible.chunks(batch) {
        ctx.check_cancel().await?;
        let ids: Vec<Uuid> = chunk.iter().map(|_| Uuid::now_v7()).collect();
        let mut tx = ctx.pool().begin().await?;
        // Guests that already have their delivery from an earlier run of this task get
        // none: conflict rows are skipped and only new ones get a task.
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
            child.name,
            child.queue,
            child.max_attempts,
            &ctx.requester,
            ctx.config().task_ttl,
        )
        .await?;
        tx.commit().await?;
    }

    ctx.progress(0, "sending").await;
    let c = loop {
        let c = counts(&ctx).await?;
        let pct = if c.total == 0 {
            100
        } else {
            (c.done * 100 / c.total) as u8
        };
        ctx.progress(pct, "sending").await;
        if c.done >= c.total {
            break c;
        }
        if let Err(e) = ctx.check_cancel().await {
            if e == JobError::Cancelled {
                cancel_children(&ctx).await?;
            }
            return Err(e);
        }
        tokio::time::sleep(POLL).await;
    };
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

/// Children not started yet are cancelled (running ones get the request and finish their
/// one send); their deliveries are marked failed so none stays `queued` forever.
async fn cancel_children(ctx: &TaskContext) -> Result<(), sqlx::Error> {
    let mut tx = ctx.pool().begin().await?;
    sqlx::query(
        "UPDATE tasks t SET status = CASE WHEN t.status IN ('pending', 'retrying') THEN 'cancelled' ELSE t.status END, \
             finished_at = CASE WHEN t.status IN ('pending', 'retrying') THEN now() ELSE t.finished_at END, \
             cancel_requested = true, updated_at = now() \
         FROM deliveries d WHERE d.bulk_task_id = $1 AND t.id = d.task_id \
             AND t.status IN ('pending', 'retrying', 'running')",
    )
    .bind(ctx.id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE deliveries d SET status = 'failed', failed_at = now(), updated_at = now(), \
             error = '{\"code\": \"cancelled\", \"message\": \"the bulk send was cancelled\"}'::jsonb \
         FROM tasks t WHERE d.bulk_task_id = $1 AND t.id = d.task_id AND t.status = 'cancelled' \
             AND d.status = 'queued'",
    )
    .bind(ctx.id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}
