//! The relay: Postgres keeps the schedule, this loop hands due tasks to Redis.
//!
//! It pushes `pending`/`retrying` rows that are due and have no live message (the api's push
//! failed, Redis lost its data, a retry's delay ran out), and `running` rows whose lease
//! expired (their worker died). It never pushes more than the queue's room under
//! `QUEUE_MAX_READY`, so the Redis backlog stays bounded however many rows wait, and it
//! locks rows with `SKIP LOCKED`, so every replica can run it.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{pause::PausedQueues, Envelope, MessageQueue};
use crate::{hooks::KindHooks, progress::Notifier, store, task::Ended};

#[derive(Clone)]
pub struct Relay {
    /// The bookkeeping pool ([`crate::db::bookkeeping_pool`]): a lost `pushed_at` mark only
    /// means a message pushed twice, which is claimed once. A pass that ends tasks commits
    /// synchronously.
    pub pool: PgPool,
    pub queue: MessageQueue,
    pub notifier: Notifier,
    /// Run for the tasks the relay ends (a lost last attempt, a cancelled waiting task).
    pub hooks: KindHooks,
    pub queues: Vec<String>,
    pub repush_after: Duration,
    pub interval: Duration,
    pub batch: usize,
    pub task_ttl: Duration,
    /// A paused queue is skipped: its due tasks wait in Postgres.
    pub paused: Arc<PausedQueues>,
    /// Where the last pass over each queue stopped (see [`store::take_due`]).
    pub positions: Positions,
}

/// How long a pass may start where the previous one stopped. Starting after it skips what
/// this relay pushed and no worker claimed yet; what became due behind it meanwhile (a
/// message Redis lost, a claim a Postgres crash lost, a task locked by another replica's
/// pass, a task enqueued to run at an earlier time) waits at most this long for a pass from
/// the head of the queue.
const POSITION_KEPT: Duration = Duration::from_secs(1);

/// Per queue: where the last pass stopped, and when the current run of passes started from
/// the head.
#[derive(Clone, Default)]
pub struct Positions(Arc<Mutex<HashMap<String, (store::DuePosition, Instant)>>>);

impl Positions {
    /// Where the next pass over `queue` starts: after the last one, unless the run of passes
    /// started from the head more than [`POSITION_KEPT`] ago.
    fn start(&self, queue: &str) -> Option<store::DuePosition> {
        let map = self.0.lock().ok()?;
        map.get(queue)
            .filter(|(_, since)| since.elapsed() < POSITION_KEPT)
            .map(|(position, _)| *position)
    }

    /// Records a committed pass that started at `started` and took tasks up to `last`.
    /// A pass that found fewer tasks than it could take reached the end: the next starts
    /// from the head.
    fn record(
        &self,
        queue: &str,
        started: Option<store::DuePosition>,
        last: Option<store::DuePosition>,
        full: bool,
    ) {
        let Ok(mut map) = self.0.lock() else {
            return;
        };
        match last.filter(|_| full) {
            None => {
                map.remove(queue);
            }
            Some(last) => {
                // A pass from the head starts a new run of passes; one after a position keeps
                // the run's start, so the head is read again within `POSITION_KEPT`.
                let since = match (started, map.get(queue)) {
                    (Some(_), Some((_, since))) => *since,
                    _ => Instant::now(),
                };
                map.insert(queue.to_string(), (last, since));
            }
        }
    }
}

impl Relay {
    /// Runs until `shutdown`; `wake` makes it look again at once (e.g. a local task finished
    /// and freed room in Redis).
    pub async fn run(self, wake: Arc<Notify>, shutdown: CancellationToken) {
        let mut failing = false;
        loop {
            let mut pushed = 0usize;
            let mut error = None;
            for queue in &self.queues {
                match self.relay_queue(queue).await {
                    Ok(n) => pushed += n,
                    Err(e) => error = Some(format!("{queue}: {e}")),
                }
            }
            match error {
                // Log a failure once when it starts and once when it ends, not every tick.
                Some(e) if !failing => {
                    tracing::warn!(error = %e, "relay cannot push due tasks; will keep trying");
                    failing = true;
                }
                None if failing => {
                    tracing::info!("relay recovered");
                    failing = false;
                }
                _ => {}
            }
            if pushed > 0 && !failing {
                // More may be due (a backlog larger than one batch): go again at once.
                tokio::task::yield_now().await;
                if shutdown.is_cancelled() {
                    return;
                }
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(self.interval) => {}
            }
        }
    }

    /// One pass over one queue; returns how many messages were pushed.
    pub async fn relay_queue(&self, queue: &str) -> anyhow::Result<usize> {
        if self.paused.is_paused(queue) {
            return Ok(0);
        }
        let room = self.queue.room(queue).await?;
        if room == 0 {
            return Ok(0);
        }
        let limit = room.min(self.batch) as i64;
        let mut tx = self.pool.begin().await?;
        let backoffs = self.hooks.backoffs();
        let expired = store::take_expired(&mut tx, queue, limit, self.task_ttl, &backoffs).await?;
        let mut due = expired.due;
        let mut finished = expired.finished;
        let lost = due.len();
        let left = limit - due.len() as i64;
        let mut position = None;
        if left > 0 {
            let start = self.positions.start(queue);
            let (waiting, last) =
                store::take_due(&mut tx, queue, self.repush_after, left, start).await?;
            let full = (waiting.due.len() + waiting.finished.len()) as i64 == left;
            position = Some((start, last, full));
            due.extend(waiting.due);
            finished.extend(waiting.finished);
        }
        if !finished.is_empty() {
            // Ending a task is what clients see and the kinds' hooks act on: durable before
            // anyone is told.
            sqlx::query("SET LOCAL synchronous_commit = on")
                .execute(&mut *tx)
                .await?;
        }
        // The kinds' rows follow their ended tasks in this transaction.
        for f in &finished {
            self.hooks
                .terminal(
                    &mut tx,
                    &f.kind,
                    &Ended {
                        id: f.id,
                        status: f.status,
                        error: f.error.clone(),
                    },
                )
                .await?;
        }
        if !due.is_empty() {
            let envelopes: Vec<Envelope> = due
                .iter()
                .map(|d| Envelope {
                    task: d.id,
                    kind: d.kind.clone(),
                    isolate: d.isolate,
                })
                .collect();
            // A failed push returns early: the transaction rolls back and the rows stay
            // unpushed for the next pass.
            self.queue.push(queue, &envelopes).await?;
        }
        tx.commit().await?;
        if let Some((start, last, full)) = position {
            self.positions.record(queue, start, last, full);
        }
        if lost > 0 {
            tracing::info!(
                queue,
                count = lost,
                "tasks whose worker was lost are due again"
            );
        }
        if !finished.is_empty() {
            tracing::warn!(
                queue,
                count = finished.len(),
                "tasks ended without a worker: cancelled on request, or lost on their last attempt"
            );
            self.notifier
                .changed(&finished.iter().map(|f| f.id).collect::<Vec<_>>());
        }
        if lost > 0 {
            self.notifier
                .changed(&due.iter().take(lost).map(|d| d.id).collect::<Vec<_>>());
        }
        if !due.is_empty() {
            tracing::debug!(queue, count = due.len(), "relayed due tasks");
        }
        Ok(due.len())
    }
}
