//! Consuming one queue: an apalis worker on our apalis-redis queue whose handler hands each
//! envelope to the [`Runner`], under a supervisor that restarts it with backoff.

use std::{sync::Arc, time::Duration};

use apalis::prelude::{BackendExt, BoxDynError, Data, WorkerBuilder, WorkerBuilderExt};
use apalis_redis::RedisStorage;
use redis::aio::ConnectionManager;
use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{
    redis_conn::Keys,
    runner::Runner,
    slots::{Reserved, SlotGate, Slots},
    transport::{
        wake::{WakeSignal, WakeStrategy},
        Envelope, MessageQueue,
    },
};

/// The apalis handler: decode the envelope leniently (a message that does not decode is
/// dropped with a log line instead of killing the worker, as a typed `Args` would) and let
/// the runner do the rest. It never returns an error, so apalis never retries: our task
/// layer has recorded the outcome.
async fn on_message<S: Send + Sync + 'static>(
    message: Value,
    runner: Data<Arc<Runner<S>>>,
    slots: Data<Arc<Slots>>,
    reserved: Option<Data<Reserved>>,
) -> Result<(), BoxDynError> {
    match serde_json::from_value::<Envelope>(message) {
        Ok(envelope) => {
            let hold = reserved.and_then(|r| r.take());
            runner.handle_reserved(envelope, &slots, hold).await
        }
        Err(e) => tracing::warn!(error = %e, "undecodable transport message dropped"),
    }
    Ok(())
}

/// A unique name per process incarnation: apalis-redis refuses to register a name whose
/// previous owner's heartbeat is still fresh.
pub fn instance_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".into());
    let id = uuid::Uuid::now_v7().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &id[id.len() - 8..])
}

/// Fewest messages asked for per fetch.
const MIN_FETCH: usize = 4;

pub struct QueueConsumer<S> {
    pub queue: String,
    pub concurrency: usize,
    pub conn: ConnectionManager,
    pub keys: Keys,
    pub runner: Arc<Runner<S>>,
    pub signal: Arc<WakeSignal>,
    pub poll_interval: Duration,
    pub heartbeat: Duration,
    pub instance: String,
    /// The queue's handler slots in this process (shared with its `queue_metrics` event);
    /// they outlive the apalis worker's restarts, and with them what was learnt of its times.
    pub slots: Arc<Slots>,
}

impl<S: Send + Sync + 'static> QueueConsumer<S> {
    /// Runs the queue's apalis worker until `shutdown`, restarting it with exponential
    /// backoff whenever it stops on a backend error (a Redis blip must not end the process).
    pub async fn supervise(self, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        let mut run = 0u64;
        let mut paused = self.signal.paused();
        loop {
            // A paused queue fetches nothing: wait here until it is resumed.
            while *paused.borrow_and_update() {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = paused.changed() => {}
                }
            }
            if shutdown.is_cancelled() {
                return;
            }
            run += 1;
            let name = format!("{}-{}-{}", self.instance, self.queue, run);
            let cfg = MessageQueue::apalis_config(&self.keys, &self.queue)
                // Fetch about as many as can run: a larger batch hoards messages that
                // other replicas could start. At least a few, so a worker of low
                // concurrency does not pay a Redis round trip per task.
                .batch_size(self.concurrency.clamp(MIN_FETCH, 200))
                // Our task row is the lock; apalis' lock costs an O(backlog) LREM per task.
                .lock_tasks(false)
                // Nor does a message need acknowledging: the claim decides, and the janitor
                // drops what was fetched. apalis' acknowledgement is a script per batch that
                // moves each message to a done set and writes its meta hash, only for the
                // janitor to delete both: a sixth of Redis' CPU per task (BENCHMARKS.md).
                .persist_results(false)
                .emit_events(false)
                .heartbeat_interval(self.heartbeat)
                .missed_heartbeats(3);
            let backend = RedisStorage::<Value>::new(self.conn.clone())
                .with_config(cfg)
                .poll_with_strategy(WakeStrategy::new(self.signal.clone(), self.poll_interval));
            // apalis runs the handlers' slots plus the messages that may be claimed ahead
            // of them; its next message waits for a reservation (`SlotGate`), and `Slots`
            // holds the handlers themselves to the queue's concurrency.
            let worker = WorkerBuilder::new(name.clone())
                .backend(backend)
                .concurrency(self.concurrency + Slots::ahead_capacity(self.concurrency))
                .layer(SlotGate(self.slots.clone()))
                .data(self.runner.clone())
                .data(self.slots.clone())
                .build(on_message::<S>);
            // Operators see each worker's concurrency next to its registration (apalis
            // itself records only its backend and service there); best effort.
            let mut conn = self.conn.clone();
            let _: Result<(), _> = redis::cmd("HSET")
                .arg(self.keys.apalis_worker_metadata(&self.queue, &name))
                .arg("concurrency")
                .arg(self.concurrency)
                .query_async(&mut conn)
                .await;
            let started = Instant::now();
            let stop = shutdown.clone();
            let pause = self.signal.paused();
            tracing::info!(queue = %self.queue, worker = %name, concurrency = self.concurrency, "queue worker starting");
            let result = worker
                .run_with_ctx(move |ctx| {
                    let stop = stop.clone();
                    let mut pause = pause.clone();
                    async move {
                        tokio::select! {
                            _ = stop.cancelled() => {}
                            _ = pause.wait_for(|paused| *paused) => {}
                        }
                        // Stops fetching, lets running handlers finish and puts messages
                        // fetched but not started back on the queue.
                        let _ = ctx.stop();
                        Ok(())
                    }
                })
                .await;
            if shutdown.is_cancelled() {
                tracing::info!(queue = %self.queue, worker = %name, "queue worker stopped");
                return;
            }
            if *paused.borrow() {
                tracing::info!(queue = %self.queue, worker = %name, "queue paused: worker stopped until it is resumed");
                continue;
            }
            match result {
                Ok(()) => {
                    tracing::warn!(queue = %self.queue, worker = %name, "queue worker ended unexpectedly; restarting")
                }
                Err(e) => {
                    tracing::error!(queue = %self.queue, worker = %name, error = %e, retry_in_ms = backoff.as_millis() as u64, "queue worker failed; restarting")
                }
            }
            if started.elapsed() > Duration::from_secs(60) {
                backoff = Duration::from_millis(100);
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }
}
