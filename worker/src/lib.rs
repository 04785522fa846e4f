//! The worker process: one consumer per served queue (an apalis worker under a supervisor
//! that restarts it with backoff), plus the relay (Postgres → Redis), the wake listener, the
//! janitor, the schedule ticker and the `queue_metrics` log. Every task a message points at is run by the engine's
//! [`engine::runner::Runner`], with the product's [`jobs::Services`].

pub mod config;
pub mod health;

use std::{collections::HashMap, sync::Arc, time::Duration};

use engine::{
    consumer::{instance_name, QueueConsumer},
    redis_conn::Keys,
    runner::Runner,
    schedule::Ticker,
    slots::Slots,
    transport::{
        pause::{self, PausedQueues},
        relay::Relay,
        wake::{self, WakeSignal},
        MessageQueue,
    },
    Registry,
};
use jobs::Services;
use tokio::{sync::Notify, task::JoinSet};
use tokio_util::sync::CancellationToken;

pub use config::WorkerConfig;

/// Runs a worker process until `shutdown` is cancelled, then drains it: stop fetching, let
/// running attempts finish for up to `shutdown_timeout`, give back those that did not.
pub async fn run(
    cfg: WorkerConfig,
    registry: Registry<Services>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let core = cfg.core.clone();
    let pool = engine::db::connect(
        &core.database_url,
        core.database_max_connections,
        cfg.statement_timeout,
    )
    .await?;
    jobs::db::migrate(&pool).await?;
    let conn =
        engine::redis_conn::connect_with_retry(&core.redis_url, Duration::from_secs(60)).await?;
    let keys = Keys::new(core.redis_prefix.clone());
    let queue = MessageQueue::new(conn.clone(), keys.clone(), core.queue_max_ready);
    let shared = Arc::new(Services::runtime(pool.clone(), core.clone(), conn.clone()));
    let hooks = registry.hooks();
    // The configured schedules reach the table before this replica ticks (see
    // `engine::schedule::store::upsert_config` for why an older replica cannot undo them).
    let specs = jobs::schedules::builtin(&core)?;
    engine::schedule::store::upsert_config(&pool, &specs, chrono::Utc::now()).await?;
    let ticker = Ticker::new(
        pool.clone(),
        shared.enqueuer.clone(),
        registry.iter().map(|k| k.info()),
    );
    let notifier = shared.notifier.clone();
    let instance = instance_name();
    let relay_wake = Arc::new(Notify::new());
    let runner = Runner::start(
        shared.clone(),
        Arc::new(registry),
        instance.clone(),
        relay_wake.clone(),
    );
    let ticker = ticker.wake_relay(relay_wake.clone());

    let queues: Vec<String> = cfg.queues.keys().cloned().collect();
    tracing::info!(worker = %instance, queues = ?queues, "worker starting");
    let background = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let signals: HashMap<String, Arc<WakeSignal>> = queues
        .iter()
        .map(|q| (q.clone(), Arc::new(WakeSignal::default())))
        .collect();
    let slots: HashMap<String, Arc<Slots>> = cfg
        .queues
        .iter()
        .map(|(q, concurrency)| (q.clone(), Slots::new(*concurrency)))
        .collect();
    // Paused queues are known before any consumer starts fetching.
    let paused = Arc::new(PausedQueues::default());
    pause::refresh(&pool, &paused, &signals).await?;
    tasks.spawn(pause::watch(
        pool.clone(),
        paused.clone(),
        signals.clone(),
        cfg.pause_poll_interval,
        background.clone(),
    ));
    let relay = Relay {
        pool: shared.bookkeeping.clone(),
        queue,
        notifier,
        hooks,
        queues: queues.clone(),
        repush_after: core.queue_repush_after,
        interval: cfg.relay_interval,
        batch: cfg.relay_batch.max(1),
        task_ttl: core.task_ttl,
        paused: paused.clone(),
        positions: Default::default(),
    };
    tasks.spawn(relay.run(relay_wake, background.clone()));
    tasks.spawn(engine::transport::janitor::run(
        conn.clone(),
        keys.clone(),
        queues.clone(),
        Duration::from_secs(5),
        background.clone(),
    ));
    tasks.spawn(shared.metrics.clone().run_flusher(
        conn.clone(),
        keys.clone(),
        Duration::from_secs(1),
        background.clone(),
    ));
    if cfg.run_schedules {
        tasks.spawn(ticker.run(cfg.schedule_interval, background.clone()));
    }
    tasks.spawn(
        engine::queue_metrics::QueueMetricsLog {
            pool: pool.clone(),
            transport: MessageQueue::new(conn.clone(), keys.clone(), core.queue_max_ready),
            redis: conn.clone(),
            keys: keys.clone(),
            metrics: shared.metrics.clone(),
            queues: queues.clone(),
            interval: cfg.queue_metrics_interval,
            // apalis re-queues the messages of a worker silent for three heartbeats.
            alive_within: cfg.heartbeat * 3,
            worker: instance.clone(),
            paused: paused.clone(),
            slots: slots.clone(),
        }
        .run(background.clone()),
    );
    if let Some(path) = cfg.health_file.clone() {
        tasks.spawn(health::beat(
            path,
            pool.clone(),
            conn.clone(),
            cfg.heartbeat,
            background.clone(),
        ));
    }
    tasks.spawn(wake::listen(
        core.redis_url.clone(),
        keys.clone(),
        signals.clone(),
        background.clone(),
    ));

    let mut workers = JoinSet::new();
    for (queue, concurrency) in &cfg.queues {
        let qw = QueueConsumer {
            queue: queue.clone(),
            concurrency: *concurrency,
            conn: conn.clone(),
            keys: keys.clone(),
            runner: runner.clone(),
            signal: signals[queue].clone(),
            poll_interval: cfg.poll_interval,
            heartbeat: cfg.heartbeat,
            instance: instance.clone(),
            slots: slots[queue].clone(),
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
    if !runner.flush(Duration::from_secs(10)).await {
        tracing::warn!(
            "shutdown: some completions were not recorded; those tasks run again after their lease"
        );
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    pool.close().await;
    tracing::info!(worker = %instance, "worker stopped");
    Ok(())
}
