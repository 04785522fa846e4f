//! The periodic `queue_metrics` log line (seeds/001: run the worker with `LOG_FORMAT=json` to
//! watch the queues): every interval each worker process logs one structured event per queue
//! it serves. Depth by state and the oldest due task's age come from Postgres, the ready
//! messages and the live workers from Redis, completions and failures since the previous
//! event from this process's [`Metrics`] (its own attempts: summing the events of every
//! process gives the queue's throughput).

use std::{collections::HashMap, time::Duration};

use redis::aio::ConnectionManager;
use serde::Serialize;
use sqlx::{PgPool, Row};
use tokio_util::sync::CancellationToken;

use crate::{metrics::Metrics, redis_conn::Keys, transport::MessageQueue};

/// Non-terminal depth of the given queues, one branch per partial index: `tasks_due_idx`
/// (pending/retrying) and `tasks_lease_idx` (running). Terminal rows, the bulk of the
/// table, are never read.
const DEPTH: &str = "
    SELECT queue, status::text AS status,
           count(*) FILTER (WHERE run_at <= now()) AS due,
           count(*) FILTER (WHERE run_at > now()) AS later,
           extract(epoch FROM now() - min(run_at) FILTER (WHERE run_at <= now()))::float8 AS oldest
    FROM tasks WHERE status IN ('pending', 'retrying') AND queue = ANY($1)
    GROUP BY queue, status
    UNION ALL
    SELECT queue, 'running', count(*), 0, NULL::float8
    FROM tasks WHERE status = 'running' AND queue = ANY($1)
    GROUP BY queue";

/// One queue as one process sees it at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueueSnapshot {
    pub queue: String,
    /// Due and waiting for a worker.
    pub pending: i64,
    pub running: i64,
    /// Due again after a failed attempt.
    pub retrying: i64,
    /// Pending or retrying, not due yet.
    pub scheduled: i64,
    /// Messages in Redis not yet fetched (at most `QUEUE_MAX_READY`); -1 when Redis failed.
    pub redis_ready: i64,
    /// Age of the oldest due task, seconds (0 when none).
    pub oldest_pending_age_seconds: f64,
    /// This process's attempts since the previous event, by outcome: completed, failed for
    /// good, failed and retried later, failed for the last time (`dead`).
    pub completed: u64,
    pub failed: u64,
    pub retried: u64,
    pub dead: u64,
    /// Worker processes with a recent heartbeat on this queue (-1 when Redis failed).
    pub workers_alive: i64,
    /// Seconds since the previous event (the window of the counts above).
    pub window_seconds: f64,
    /// The queue is paused (accepting, nothing started) as this process last saw it.
    pub paused: bool,
    /// This process's tasks claimed ahead of a free slot at the moment of the event; they
    /// count in `running`, so `running` may exceed the concurrency by this much.
    pub claimed_ahead: u64,
}

impl QueueSnapshot {
    /// Writes the event: message `queue_metrics`, one field per number (with
    /// `LOG_FORMAT=json` a flat JSON object per line).
    pub fn log(&self, worker: &str) {
        tracing::info!(
            event = "queue_metrics",
            worker,
            queue = %self.queue,
            pending = self.pending,
            running = self.running,
            retrying = self.retrying,
            scheduled = self.scheduled,
            redis_ready = self.redis_ready,
            oldest_pending_age_seconds = self.oldest_pending_age_seconds,
            completed = self.completed,
            failed = self.failed,
            retried = self.retried,
            dead = self.dead,
            workers_alive = self.workers_alive,
            window_seconds = self.window_seconds,
            paused = self.paused,
            claimed_ahead = self.claimed_ahead,
            "queue_metrics"
        );
    }

    /// Adds this process's attempt counts of the queue (from [`Metrics::take_outcomes`]).
    pub fn add_outcomes(&mut self, outcomes: &HashMap<(String, String), u64>) {
        for ((queue, outcome), n) in outcomes {
            if *queue != self.queue {
                continue;
            }
            match outcome.as_str() {
                "completed" => self.completed += n,
                "failed" => self.failed += n,
                "retrying" => self.retried += n,
                "dead" => self.dead += n,
                _ => {}
            }
        }
    }
}

/// The loop's inputs: where to read, which queues, how often.
pub struct QueueMetricsLog {
    pub pool: PgPool,
    pub transport: MessageQueue,
    pub redis: ConnectionManager,
    pub keys: Keys,
    pub metrics: Metrics,
    pub queues: Vec<String>,
    pub interval: Duration,
    /// A worker whose heartbeat is older than this is not counted alive.
    pub alive_within: Duration,
    /// This process's name, in every event.
    pub worker: String,
    /// The queues this process sees paused (`crate::transport::pause`).
    pub paused: std::sync::Arc<crate::transport::pause::PausedQueues>,
    /// The served queues' handler slots in this process (`crate::slots`).
    pub slots: HashMap<String, std::sync::Arc<crate::slots::Slots>>,
}

impl QueueMetricsLog {
    /// Logs every `interval` until `stop`. A failed read is logged and skipped; the counts
    /// it would have carried go into the next event.
    pub async fn run(self, stop: CancellationToken) {
        // Attempts before the first tick belong to the first window.
        let mut last = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.interval) => {}
            }
            match self.depth().await {
                Ok(mut snapshots) => {
                    let outcomes = self.metrics.take_outcomes();
                    let window = last.elapsed().as_secs_f64();
                    last = tokio::time::Instant::now();
                    for s in &mut snapshots {
                        s.add_outcomes(&outcomes);
                        s.window_seconds = window;
                        s.redis_ready = self.redis_ready(&s.queue).await;
                        s.workers_alive = self.workers_alive(&s.queue).await;
                        s.paused = self.paused.is_paused(&s.queue);
                        s.claimed_ahead = self
                            .slots
                            .get(&s.queue)
                            .map_or(0, |slots| slots.claimed_ahead() as u64);
                        s.log(&self.worker);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "queue_metrics: depth not read"),
            }
        }
    }

    /// Depth per served queue (idle queues as zeros).
    pub async fn depth(&self) -> Result<Vec<QueueSnapshot>, sqlx::Error> {
        let rows = sqlx::query(DEPTH)
            .bind(&self.queues)
            .fetch_all(&self.pool)
            .await?;
        let mut out: Vec<QueueSnapshot> = self
            .queues
            .iter()
            .map(|q| QueueSnapshot {
                queue: q.clone(),
                ..Default::default()
            })
            .collect();
        for r in rows {
            let queue: String = r.try_get("queue")?;
            let Some(s) = out.iter_mut().find(|s| s.queue == queue) else {
                continue;
            };
            let due: i64 = r.try_get("due")?;
            let later: i64 = r.try_get("later")?;
            match r.try_get::<String, _>("status")?.as_str() {
                "pending" => s.pending += due,
                "retrying" => s.retrying += due,
                _ => s.running += due,
            }
            s.scheduled += later;
            let oldest: Option<f64> = r.try_get("oldest")?;
            s.oldest_pending_age_seconds = s.oldest_pending_age_seconds.max(oldest.unwrap_or(0.0));
        }
        Ok(out)
    }

    async fn redis_ready(&self, queue: &str) -> i64 {
        match self.transport.depth(queue).await {
            Ok(n) => n as i64,
            Err(e) => {
                tracing::debug!(queue, error = %e, "queue_metrics: redis depth not read");
                -1
            }
        }
    }

    async fn workers_alive(&self, queue: &str) -> i64 {
        let since = chrono::Utc::now().timestamp() - self.alive_within.as_secs() as i64;
        let mut conn = self.redis.clone();
        redis::cmd("ZCOUNT")
            .arg(self.keys.apalis_workers(queue))
            .arg(since)
            .arg("+inf")
            .query_async::<i64>(&mut conn)
            .await
            .unwrap_or(-1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_counted_for_their_queue_only() {
        let mut s = QueueSnapshot {
            queue: "maintenance".into(),
            ..Default::default()
        };
        let outcomes: HashMap<(String, String), u64> = [
            (("maintenance".into(), "completed".into()), 3),
            (("maintenance".into(), "failed".into()), 1),
            (("maintenance".into(), "cancelled".into()), 1),
            (("maintenance".into(), "retrying".into()), 2),
            (("maintenance".into(), "dead".into()), 1),
            (("maintenance".into(), "waiting".into()), 9),
            (("reports".into(), "completed".into()), 7),
        ]
        .into_iter()
        .collect();
        s.add_outcomes(&outcomes);
        assert_eq!((s.completed, s.failed, s.retried, s.dead), (3, 1, 2, 1));
    }
}
