//! Removes fetched messages from Redis.
//!
//! apalis-redis keeps every message it ever carried (`{q}:data`, `{q}:meta:<id>`, and the id
//! in a worker's in-flight set, or in the `{q}:done` set once acknowledged) and cleans nothing
//! (notes/apalis-1.0.md §9). Our messages are only pointers to task rows, and our workers do
//! not acknowledge them (`persist_results(false)`, see the consumer): once fetched, a message
//! is worthless, since the claim decides what runs and the relay pushes again whatever was
//! fetched and never claimed. So the janitor empties the in-flight sets, and the done and dead
//! sets of older workers that still acknowledge, in small batches, to keep Redis memory flat.
//!
//! An in-flight set also lets apalis push a dead worker's messages again (or a stopping
//! worker's unstarted ones). For an id the janitor took first, that no longer happens, and the
//! relay pushes its task again after `QUEUE_REPUSH_AFTER_SECONDS`, as for a lost message. For
//! an id still in the set, it does happen; the extra message is claimed once or skipped.

use std::time::Duration;

use redis::{aio::ConnectionManager, Script};
use tokio_util::sync::CancellationToken;

use super::MessageQueue;
use crate::redis_conn::Keys;

const SWEEP: &str = r#"
-- KEYS[1] done set, KEYS[2] dead set, KEYS[3] data hash, KEYS[4] workers sorted set;
-- ARGV[1] meta prefix, ARGV[2] batch, ARGV[3] in-flight set prefix
local removed = 0
local sets = {KEYS[1], KEYS[2]}
for _, worker in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do
  table.insert(sets, ARGV[3] .. ':' .. worker)
end
for _, set in ipairs(sets) do
  local ids = redis.call('SPOP', set, tonumber(ARGV[2]))
  for _, id in ipairs(ids) do
    redis.call('HDEL', KEYS[3], id)
    redis.call('DEL', ARGV[1] .. ':' .. id)
    removed = removed + 1
  end
end
return removed
"#;

const BATCH: usize = 500;

/// Sweeps per tick at most, while they come back full: 200,000 messages per set every 5 s,
/// above what one worker fetches (measured drains: 6,000–18,000/s), so the sets cannot grow
/// under sustained load. Each sweep is a short script of its own, so other commands run in
/// between.
const SWEEPS_PER_TICK: usize = 400;

/// Removes up to `BATCH` fetched messages of `queue` per set; returns how many.
pub async fn sweep(
    conn: &mut ConnectionManager,
    keys: &Keys,
    queue: &str,
) -> redis::RedisResult<usize> {
    let cfg = MessageQueue::apalis_config(keys, queue);
    Script::new(SWEEP)
        .key(cfg.done_jobs_set())
        .key(cfg.dead_jobs_set())
        .key(cfg.job_data_hash())
        .key(cfg.workers_set())
        .arg(cfg.job_meta_hash())
        .arg(BATCH)
        .arg(cfg.inflight_jobs_set())
        .invoke_async(conn)
        .await
}

pub async fn run(
    mut conn: ConnectionManager,
    keys: Keys,
    queues: Vec<String>,
    every: Duration,
    shutdown: CancellationToken,
) {
    loop {
        for queue in &queues {
            // Several sweeps per tick when a burst left many messages behind.
            for _ in 0..SWEEPS_PER_TICK {
                match sweep(&mut conn, &keys, queue).await {
                    Ok(n) if n >= BATCH => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::debug!(queue, error = %e, "janitor sweep failed");
                        break;
                    }
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
