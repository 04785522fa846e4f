//! In-process workers: `worker::run` on the test's runtime, stopped like SIGTERM stops one.

use std::{collections::BTreeMap, time::Duration};

use engine::Registry;
use jobs::testing::TestEnv;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use worker::WorkerConfig;

/// Worker settings for `env` serving `queues` with eight slots each; intervals are short so
/// tests do not wait on timers.
pub fn worker_config(env: &TestEnv, queues: &[&str]) -> WorkerConfig {
    WorkerConfig {
        core: env.config.clone(),
        queues: queues
            .iter()
            .map(|q| (q.to_string(), 8))
            .collect::<BTreeMap<_, _>>(),
        shutdown_timeout: Duration::from_secs(5),
        poll_interval: Duration::from_millis(100),
        heartbeat: Duration::from_secs(1),
        relay_interval: Duration::from_millis(100),
        relay_batch: 500,
        schedule_interval: Duration::from_millis(200),
        // A tick (every minute for reservation_release) would add tasks a test did not ask
        // for; tests of schedules turn it on (`TestAppBuilder::worker_settings`).
        run_schedules: false,
        pause_poll_interval: Duration::from_millis(200),
        statement_timeout: engine::db::WORKER_STATEMENT_TIMEOUT,
        queue_metrics_interval: Duration::from_secs(30),
        health_file: None,
    }
}

/// A worker running in the test's process until stopped (or dropped: then it is told to
/// stop, without waiting).
pub struct RunningWorker {
    shutdown: CancellationToken,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

impl RunningWorker {
    pub fn start(config: WorkerConfig, registry: Registry<jobs::Services>) -> Self {
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(worker::run(config, registry, shutdown.clone()));
        Self {
            shutdown,
            handle: Some(handle),
        }
    }

    /// Shuts the worker down gracefully and fails the test if it ended with an error.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(handle) = self.handle.take() {
            handle
                .await
                .expect("worker task")
                .expect("worker shut down cleanly");
        }
    }
}

impl Drop for RunningWorker {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A worker *process* (the release-like binary, not in-process) on `queues` of `app`, with a
/// short lease so a killed one's tasks are taken over quickly; for crash tests.
pub fn spawn_worker_process(
    app: &crate::TestApp,
    queues: &str,
    lease_seconds: u32,
) -> tokio::process::Child {
    worker_command(app, queues, lease_seconds)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("worker binary")
}

/// The command [`spawn_worker_process`] runs (quiet: `RUST_LOG=warn`), for tests that read
/// its output or change its environment before spawning it.
pub fn worker_command(
    app: &crate::TestApp,
    queues: &str,
    lease_seconds: u32,
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(crate::binary("worker"));
    command
        .env("DATABASE_URL", &app.config.database_url)
        .env("REDIS_URL", &app.redis_url)
        .env("REDIS_PREFIX", app.keys.prefix())
        .env("WORKER_QUEUES", queues)
        .env("TASK_LEASE_SECONDS", lease_seconds.to_string())
        .env("QUEUE_REPUSH_AFTER_SECONDS", "1")
        .env("RELAY_INTERVAL_MS", "100")
        .env("WORKER_HEARTBEAT_SECONDS", "1")
        .env("WORKER_SCHEDULES", "false")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true);
    command
}
