//! Pausing a queue. The truth is `queue_pauses` in Postgres; every worker reads it every
//! [`watch`] interval and, while its queue is paused, neither relays its due tasks
//! ([`super::relay::Relay`] asks [`PausedQueues`]) nor fetches its messages (the queue's
//! consumer stops its apalis worker, which puts back what it fetched and did not start, and
//! starts it again on resume). Tasks already running finish; nothing is lost: the rows wait in
//! Postgres and the messages in Redis.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, RwLock},
    time::Duration,
};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::wake::WakeSignal;

/// A paused queue, as operators see it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Pause {
    pub queue: String,
    pub paused_at: DateTime<Utc>,
    pub paused_by: String,
}

pub async fn list(pool: &PgPool) -> Result<Vec<Pause>, sqlx::Error> {
    sqlx::query_as("SELECT queue, paused_at, paused_by FROM queue_pauses ORDER BY queue")
        .fetch_all(pool)
        .await
}

/// Pauses `queue` (`by` is who asked). False when it was paused already.
pub async fn pause(pool: &PgPool, queue: &str, by: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO queue_pauses (queue, paused_by) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(queue)
    .bind(by)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Resumes `queue`. False when it was not paused.
pub async fn resume(pool: &PgPool, queue: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM queue_pauses WHERE queue = $1")
        .bind(queue)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The queues this process last saw paused.
#[derive(Default)]
pub struct PausedQueues(RwLock<BTreeSet<String>>);

impl PausedQueues {
    pub fn is_paused(&self, queue: &str) -> bool {
        self.0.read().is_ok_and(|set| set.contains(queue))
    }

    fn replace(&self, now: BTreeSet<String>) -> BTreeSet<String> {
        match self.0.write() {
            Ok(mut set) => std::mem::replace(&mut *set, now),
            Err(_) => BTreeSet::new(),
        }
    }
}

/// Reads `queue_pauses` once into `paused` and the queues' signals.
pub async fn refresh(
    pool: &PgPool,
    paused: &PausedQueues,
    signals: &HashMap<String, Arc<WakeSignal>>,
) -> Result<(), sqlx::Error> {
    let now: BTreeSet<String> = list(pool).await?.into_iter().map(|p| p.queue).collect();
    let before = paused.replace(now.clone());
    for (queue, signal) in signals {
        let is = now.contains(queue);
        signal.set_paused(is);
        if is != before.contains(queue) {
            tracing::info!(queue = %queue, paused = is, "queue {}", if is { "paused" } else { "resumed" });
        }
    }
    Ok(())
}

/// [`refresh`] every `every` until `shutdown`. While Postgres is unreachable the last state
/// stays.
pub async fn watch(
    pool: PgPool,
    paused: Arc<PausedQueues>,
    signals: HashMap<String, Arc<WakeSignal>>,
    every: Duration,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        if let Err(e) = refresh(&pool, &paused, &signals).await {
            tracing::debug!(error = %e, "could not read queue pauses; keeping the last state");
        }
    }
}
