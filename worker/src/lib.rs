//! The worker process: one apalis worker per served queue, each under a supervisor that
//! restarts it with backoff, plus the relay (Postgres → Redis), the wake listener and the
//! janitor. Every task a message points at is run by the [`jobs::task::runner::Runner`].

pub mod config;
pub mod cron;
pub mod wake;

use std::{collections::HashMap, sync::Arc, time::Duration};

use apalis::prelude::{BackendExt, BoxDynError, Data, WorkerBuilder, WorkerBuilderExt};
use apalis_redis::RedisStorage;
use jobs::{
    kinds::Registry,
    queue::{relay::Relay, Envelope, Transport},
    redis_conn::Keys,
    task::{context::Shared, runner::Runner},
};
use redis::aio::ConnectionManager;
use serde_json::Value;
use tokio::{sync::Notify, task::JoinSet, time::Instant};
use tokio_util::sync::CancellationToken;

pub use config::WorkerConfig;
use wake::{WakeSignal, WakeStrategy};

/// The apalis handler: decode the envelope leniently (a message that does not decode is
/// dropped with a log line instead of killing the worker, as a typed `Args` would) and let
/// the runner do the rest. It never returns an error, so apalis never retries: our task
/// layer has recorded the outcome.
async fn on_message(message: Value, runner: Data<Arc<Runner>>) -> Result<(), BoxDynError> {
    match serde_json::from_value::<Envelope>(message) {
        Ok(envelope) => runner.handle(envelope).await,
        Err(e) => tracing::warn!(error = %e, "undecodable transport message dropped"),
    }
    Ok(())
}

/// A unique name per process incarnation: apalis-redis refuses to register a name whose
/// previous owner's heartbeat is still fresh.
fn instance_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".into());
    let id = uuid::Uuid::now_v7().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &id[id.len() - 8..])
}

struct QueueWorker {
    queue: String,
    concurrency: usize,
    conn: ConnectionManager,
    keys: Keys,
    runner: Arc<Runner>,
    signal: Arc<WakeSignal>,
    poll_interval: Duration,
    heartbeat: Duration,
    instance: String,
}

impl QueueWorker {
    /// Runs the queue's apalis worker until `shutdown`, restarting it with exponential
    /// backoff whenever it stops on a backend error (a Redis blip must not end the process).
    async fn supervise(self, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        let mut run = 0u64;
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            run += 1;
            let name = format!("{}-{}-{}", self.instance, self.queue, run);
            let cfg = Transport::apalis_config(&self.keys, &self.queue)
                // Fetch about as many as can run: a larger batch hoards messages that
                // other replicas could start.
                .batch_size(self.concurrency.clamp(1, 200))
                // Our task row is the lock; apalis' lock costs an O(backlog) LREM per task.
                .lock_tasks(false)
                .emit_events(false)
                .heartbeat_interval(self.heartbeat)
                .missed_heartbeats(3);
            let backend = RedisStorage::<Value>::new(self.conn.clone())
                .with_config(cfg)
                .poll_with_strategy(WakeStrategy::new(self.signal.clone(), self.poll_interval));
            let worker = WorkerBuilder::new(name.clone())
                .backend(backend)
                .concurrency(self.concurrency)
                .data(self.runner.clone())
                .build(on_message);
            let started = Instant::now();
            let stop = shutdown.clone();
            tracing::info!(queue = %self.queue, worker = %name, concurrency = self.concurrency, "queue worker starting");
            let result = worker
                .run_with_ctx(move |ctx| {
                    let stop = stop.clone();
                    async move {
                        stop.cancelled().await;
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

/// Runs a worker process until `shutdown` is cancelled, then drains it: stop fetching, let
/// running attempts finish for up to `shutdown_timeout`, give back those that did not.
pub async fn run(
    cfg: WorkerConfig,
    registry: Registry,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let core = cfg.core.clone();
    let pool = jobs::db::connect(
        &core.database_url,
        core.database_max_connections,
        cfg.statement_timeout,
    )
    .await?;
    jobs::db::migrate(&pool).await?;
    let conn =
        jobs::redis_conn::connect_with_retry(&core.redis_url, Duration::from_secs(60)).await?;
    let keys = Keys::new(core.redis_prefix.clone());
    let transport = Transport::new(conn.clone(), keys.clone(), core.queue_max_ready);
    let shared = Arc::new(Shared::new(pool.clone(), core.clone(), conn.clone()));
    let notifier = shared.notifier.clone();
    let instance = instance_name();
    let relay_wake = Arc::new(Notify::new());
    let runner = Runner::start(
        shared.clone(),
        Arc::new(registry),
        instance.clone(),
        relay_wake.clone(),
    );

    let queues: Vec<String> = cfg.queues.keys().cloned().collect();
    tracing::info!(worker = %instance, queues = ?queues, "worker starting");
    let background = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let relay = Relay {
        pool: pool.clone(),
        transport,
        notifier,
        queues: queues.clone(),
        repush_after: core.queue_repush_after,
        interval: cfg.relay_interval,
        batch: cfg.relay_batch.max(1),
        task_ttl: core.task_ttl,
    };
    tasks.spawn(relay.run(relay_wake, background.clone()));
    tasks.spawn(jobs::queue::janitor::run(
        conn.clone(),
        keys.clone(),
        queues.clone(),
        Duration::from_secs(5),
        background.clone(),
    ));
    tasks.spawn(cron::run(
        shared.enqueuer.clone(),
        jobs::kinds::kpi_refresh::spec(),
        core.kpi_refresh_interval,
        background.clone(),
    ));
    tasks.spawn(shared.metrics.clone().run_flusher(
        conn.clone(),
        keys.clone(),
        Duration::from_secs(1),
        background.clone(),
    ));
    tasks.spawn(cron::run(
        shared.enqueuer.clone(),
        jobs::kinds::task_cleanup::spec(),
        core.task_cleanup_interval,
        background.clone(),
    ));
    let signals: HashMap<String, Arc<WakeSignal>> = queues
        .iter()
        .map(|q| (q.clone(), Arc::new(WakeSignal::default())))
        .collect();
    tasks.spawn(wake::listen(
        core.redis_url.clone(),
        keys.clone(),
        signals.clone(),
        background.clone(),
    ));

    let mut workers = JoinSet::new();
    for (queue, concurrency) in &cfg.queues {
        let qw = QueueWorker {
            queue: queue.clone(),
            concurrency: *concurrency,
            conn: conn.clone(),
            keys: keys.clone(),
            runner: runner.clone(),
            signal: signals[queue].clone(),
            poll_interval: cfg.poll_interval,
            heartbeat: cfg.heartbeat,
            instance: instance.clone(),
        };
        workers.spawn(qw.supervise(shutdown.clone()));
    }

    shutdown.cancelled().await;
    tracing::info!(worker = %instance, running = runner.running(), "shutting down: finishing running tasks");
    background.cancel();
    let drained = tokio::time::timeout(cfg.shutdown_timeout, async {
        while workers.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        runner.stop_taking();
        let released = runner.release_all().await;
        tracing::warn!(
            released,
            "shutdown timeout reached: unfinished tasks released to other workers"
        );
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while workers.join_next().await.is_some() {}
        })
        .await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    pool.close().await;
    tracing::info!(worker = %instance, "worker stopped");
    Ok(())
}
