//! A global rate limit shared by every replica: one Redis counter per channel and
//! one-second window, incremented by a Lua script (atomic, one round trip). A send over the
//! limit waits for the next window. Fixed windows can let up to twice the rate through
//! across a window boundary; providers' limits are per second averages, and the simplicity
//! (no clock sync between replicas beyond Redis' own) is worth it.

use std::time::Duration;

use redis::{aio::ConnectionManager, Script};

use engine::redis_conn::Keys;

use crate::redis_keys::ProductKeys;

const SCRIPT: &str = r#"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], 2000) end
return n
"#;

#[derive(Clone)]
pub struct RateLimiter {
    conn: ConnectionManager,
    keys: Keys,
    script: Script,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("prefix", &self.keys.prefix())
            .finish()
    }
}

impl RateLimiter {
    pub fn new(conn: ConnectionManager, keys: Keys) -> Self {
        Self {
            conn,
            keys,
            script: Script::new(SCRIPT),
        }
    }

    /// Waits until one more call of `channel` fits under `per_second` (0 = no limit). If
    /// Redis fails the send goes ahead: a limiter outage must not stop deliveries, and the
    /// provider's own 429 (retried) is the backstop.
    pub async fn acquire(&self, channel: &str, per_second: u32) {
        if per_second == 0 {
            return;
        }
        loop {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let window = now.as_secs();
            let key = self.keys.rate_limit(channel, window as i64);
            let mut conn = self.conn.clone();
            let n: i64 = match self.script.key(&key).invoke_async(&mut conn).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(channel, error = %e, "rate limiter unavailable; sending unthrottled");
                    return;
                }
            };
            if n <= i64::from(per_second) {
                return;
            }
            // Over the limit: sleep to the next window, with a little jitter so waiting
            // senders do not all hit the same millisecond.
            let rest = Duration::from_secs(1)
                .saturating_sub(Duration::from_nanos(u64::from(now.subsec_nanos())));
            let jitter = Duration::from_millis(rand::random::<u64>() % 20);
            tokio::time::sleep(rest + jitter).await;
        }
    }
}
