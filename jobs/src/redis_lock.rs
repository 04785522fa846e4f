//! A Redis lock held by one run of a job across every replica (`SET key token NX PX`),
//! renewed while the run lasts and released only by its holder (compare-and-delete), so a
//! run that outlived its lock never deletes the next holder's.
//!
//! The token is the task's id: a later attempt of the *same* task (its worker crashed while
//! holding the lock) takes the lock over at once instead of waiting for it to expire, which
//! is what makes a crashed run resumable.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use redis::{aio::ConnectionManager, Script};
use tokio::task::JoinHandle;

/// Take the lock when free or already ours; 1 = held by us now.
const ACQUIRE: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0";

/// Extend the lock only while it is still ours; 0 = lost.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0";

/// Delete the lock only if it is still ours.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

/// A held lock. Renewed every third of its TTL by a background task until
/// [`HeldLock::release`] (or drop, which stops the renewal and lets the TTL expire it).
pub struct HeldLock {
    conn: ConnectionManager,
    key: String,
    token: String,
    lost: Arc<AtomicBool>,
    renewal: JoinHandle<()>,
}

impl HeldLock {
    /// Takes `key` for `token` when it is free or already held by `token`; `None` when
    /// someone else holds it.
    pub async fn acquire(
        conn: &ConnectionManager,
        key: &str,
        token: &str,
        ttl: Duration,
    ) -> redis::RedisResult<Option<Self>> {
        let mut c = conn.clone();
        let ms = ttl.as_millis().max(1) as u64;
        let got: i64 = Script::new(ACQUIRE)
            .key(key)
            .arg(token)
            .arg(ms)
            .invoke_async(&mut c)
            .await?;
        if got != 1 {
            return Ok(None);
        }
        let lost = Arc::new(AtomicBool::new(false));
        let renewal = tokio::spawn(renew(
            conn.clone(),
            key.to_string(),
            token.to_string(),
            ttl,
            lost.clone(),
        ));
        Ok(Some(Self {
            conn: conn.clone(),
            key: key.to_string(),
            token: token.to_string(),
            lost,
            renewal,
        }))
    }

    /// Whether a renewal found the lock gone or taken (the run must stop writing).
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }

    /// Stops renewing and deletes the lock if it is still ours.
    pub async fn release(self) -> redis::RedisResult<bool> {
        self.renewal.abort();
        let mut c = self.conn.clone();
        let n: i64 = Script::new(RELEASE)
            .key(&self.key)
            .arg(&self.token)
            .invoke_async(&mut c)
            .await?;
        Ok(n == 1)
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        self.renewal.abort();
    }
}

async fn renew(
    mut conn: ConnectionManager,
    key: String,
    token: String,
    ttl: Duration,
    lost: Arc<AtomicBool>,
) {
    let script = Script::new(RENEW);
    let ms = ttl.as_millis().max(1) as u64;
    loop {
        tokio::time::sleep(ttl / 3).await;
        match script
            .key(&key)
            .arg(&token)
            .arg(ms)
            .invoke_async::<i64>(&mut conn)
            .await
        {
            Ok(1) => {}
            Ok(_) => {
                tracing::warn!(lock = %key, "lock lost: it expired or another run took it");
                lost.store(true, Ordering::Relaxed);
                return;
            }
            // A Redis blip: try again at the next period; the TTL covers two more.
            Err(e) => tracing::warn!(lock = %key, error = %e, "lock not renewed"),
        }
    }
}
