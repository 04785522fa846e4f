//! `ping`: an operator's end-to-end probe (`POST /admin/ping`). A worker of the maintenance
//! queue picks it up and measures a round trip to each dependency it works with, so a
//! completed ping says more than "the api is up": the queue is relayed and consumed, and
//! the worker reaches Postgres and Redis (with how long each took).

use std::time::{Duration, Instant};

use serde_json::json;

use engine::{retry::Backoff, Done, JobError, Kind};

use crate::{queues, Ctx, Services};

pub const NAME: &str = "ping";

/// The `ping` kind.
pub struct Ping;

impl Kind for Ping {
    type State = Services;
    const NAME: &'static str = NAME;
    const QUEUE: &'static str = queues::MAINTENANCE;
    // A probe that fails should say so soon, not after a long retry schedule.
    const MAX_ATTEMPTS: i32 = 2;
    const TIMEOUT: Duration = Duration::from_secs(10);
    const BACKOFF: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));

    async fn run(ctx: Ctx) -> Result<Done, JobError> {
        let started = Instant::now();
        sqlx::query("SELECT 1").execute(ctx.pool()).await?;
        let postgres_ms = started.elapsed().as_secs_f64() * 1000.0;

        let (mut redis, _) = ctx.redis();
        let started = Instant::now();
        let pong: String = redis::cmd("PING")
            .query_async(&mut redis)
            .await
            .map_err(|e| JobError::retryable("redis_unavailable", e.to_string()))?;
        let redis_ms = started.elapsed().as_secs_f64() * 1000.0;

        Ok(Done::Result(json!({
            "pong": pong == "PONG",
            "attempt": ctx.attempt,
            "postgresMs": postgres_ms,
            "redisMs": redis_ms,
            "at": chrono::Utc::now(),
        })))
    }
}
