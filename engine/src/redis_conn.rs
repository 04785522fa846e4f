//! Redis connection and the names of our own keys.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// A connection manager with timeouts long enough that a busy Redis is not mistaken for a
/// dead one: apalis-redis' default 500 ms response timeout turns any stall into a fatal
/// worker error (notes/apalis-1.0.md §9), and reconnects on its own after a restart.
pub async fn connect(url: &str) -> redis::RedisResult<ConnectionManager> {
    let client = redis::Client::open(url)?;
    let cfg = ConnectionManagerConfig::new()
        .set_response_timeout(Some(Duration::from_secs(5)))
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(1));
    client.get_connection_manager_with_config(cfg).await
}

/// [`connect`], retrying for up to `patience`: a process that starts before Redis (compose,
/// a laptop) waits for it instead of crashing.
pub async fn connect_with_retry(
    url: &str,
    patience: Duration,
) -> redis::RedisResult<ConnectionManager> {
    let deadline = tokio::time::Instant::now() + patience;
    let mut delay = Duration::from_millis(200);
    loop {
        match connect(url).await {
            Ok(conn) => return Ok(conn),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, "redis not reachable yet; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Key names under one prefix, so tests (and deployments sharing a Redis) never collide.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The apalis-redis queue name of one of our queues (no ':' allowed: apalis splits on it).
    pub fn apalis_queue(&self, queue: &str) -> String {
        format!("{}.{}", self.prefix, queue)
    }

    /// apalis-redis's sorted set of the workers registered on a queue (name → last heartbeat).
    pub fn apalis_workers(&self, queue: &str) -> String {
        format!("{}:workers", self.apalis_queue(queue))
    }

    /// apalis-redis's metadata hash of one registered worker.
    pub fn apalis_worker_metadata(&self, queue: &str, worker: &str) -> String {
        format!("{}:workers:metadata:{worker}", self.apalis_queue(queue))
    }

    /// Progress hash of a task (DESIGN §3).
    pub fn task_progress(&self, task: uuid::Uuid) -> String {
        format!("{}:task:{}", self.prefix, task)
    }

    /// Pub/sub channel announcing changes of one task (long-poll and SSE wake-ups).
    pub fn task_channel(&self, task: uuid::Uuid) -> String {
        format!("{}:task-events:{}", self.prefix, task)
    }

    pub fn task_channel_prefix(&self) -> String {
        format!("{}:task-events:", self.prefix)
    }

    /// Hash of the task metrics every process adds to (see `metrics`).
    pub fn metrics(&self) -> String {
        format!("{}:metrics", self.prefix)
    }

    /// Hash of one UTC day's per-minute outcome counters (see `metrics::minute_counts`);
    /// `day` = days since the epoch.
    pub fn metrics_minutes(&self, day: i64) -> String {
        format!("{}:metrics:minutes:{day}", self.prefix)
    }

    /// Pub/sub channel that wakes idle workers of a queue right after a push.
    pub fn wake_channel(&self, queue: &str) -> String {
        format!("{}:wake:{}", self.prefix, queue)
    }
}
