//! Periodic tasks. Every replica runs this loop (there is no leader), so a tick only
//! *creates* a task, with the idempotency key `cron:<kind>:<tick>`: the unique
//! (requester, idempotency_key) index lets exactly one replica's insert win per tick, and the
//! work itself runs once, as an ordinary task, with retries (DESIGN §4). Ticks are aligned to
//! multiples of the period since the Unix epoch, so every replica computes the same tick.

use std::time::Duration;

use crate::{
    enqueue::{Enqueued, Enqueuer, Request},
    task::KindInfo,
};
use chrono::{TimeZone, Utc};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// Requester of cron-created tasks.
pub const REQUESTER: &str = "cron";

pub async fn run(
    enqueuer: Enqueuer,
    kind: KindInfo,
    period: Duration,
    shutdown: CancellationToken,
) {
    let period_s = period.as_secs().max(1) as i64;
    loop {
        let now = Utc::now();
        let next = (now.timestamp() / period_s + 1) * period_s;
        let wait = Duration::from_millis(((next * 1000) - now.timestamp_millis()).max(0) as u64);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        let tick = Utc.timestamp_opt(next, 0).single().unwrap_or(now);
        let key = format!("cron:{}:{}", kind.name, next);
        let result = enqueuer
            .enqueue(Request {
                kind,
                params: json!({ "trigger": "cron", "tick": tick }),
                requester: REQUESTER,
                idempotency_key: Some(&key),
                request_id: None,
                run_at: None,
            })
            .await;
        match result {
            Ok(Enqueued::Created(rec)) => {
                tracing::info!(task.id = %rec.id, task.kind = kind.name, %tick, "cron tick: task created")
            }
            Ok(_) => {
                tracing::debug!(task.kind = kind.name, %tick, "cron tick: another replica created the task")
            }
            Err(e) => {
                tracing::warn!(task.kind = kind.name, %tick, error = %e, "cron tick: task not created")
            }
        }
    }
}
