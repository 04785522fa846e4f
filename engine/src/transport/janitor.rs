//! Removes acknowledged messages from Redis.
//!
//! apalis-redis keeps every message it ever carried (`{q}:data`, `{q}:meta:<id>`, the
//! `{q}:done` set) and cleans nothing (notes/apalis-1.0.md §9). Our messages are only
//! pointers to task rows, so once acknowledged they are worthless: drop them in small
//! batches to keep Redis memory flat.

use std::time::Duration;

use redis::{aio::ConnectionManager, Script};
use tokio_util::sync::CancellationToken;

use super::MessageQueue;
use crate::redis_conn::Keys;

const SWEEP: &str = r#"
-- KEYS[1] done set, KEYS[2] dead set, KEYS[3] data hash; ARGV[1] meta prefix, ARGV[2] batch
local removed = 0
for _, set in ipairs({KEYS[1], KEYS[2]}) do
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

/// Removes up to `BATCH` finished messages of `queue` (per set); returns how many.
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
        .arg(cfg.job_meta_hash())
        .arg(BATCH)
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
            for _ in 0..20 {
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
