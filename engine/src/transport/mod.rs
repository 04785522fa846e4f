//! The transport: the tiny envelopes apalis-redis carries, pushing them ([`MessageQueue`]),
//! waking idle consumers ([`wake`]; the consumer itself is [`crate::consumer`]), handing due
//! tasks over from Postgres ([`relay`]), sweeping acknowledged messages ([`janitor`]) and
//! pausing queues ([`pause`]) (DESIGN §1, §4).
//!
//! A message only says "task X of kind K is due"; the task row is the truth. Losing a
//! message loses nothing (the relay pushes again), and a duplicate runs nothing twice (the
//! claim is conditional).

pub mod janitor;
pub mod pause;
pub mod relay;
pub mod wake;

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock, Mutex},
    time::{Duration, Instant},
};

use redis::{aio::ConnectionManager, Script};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::redis_conn::Keys;

/// The message body: `{"task": "<uuid>", "kind": "<kind>"}`, plus `"isolate": true` for a
/// task that must run alone on its worker (it lost leases while sharing one; see
/// `crate::store::take_expired`). Older workers ignore the field; the claim checks it anyway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub task: Uuid,
    pub kind: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub isolate: bool,
}

impl Envelope {
    /// The message of an ordinary task.
    pub fn new(task: Uuid, kind: impl Into<String>) -> Self {
        Self {
            task,
            kind: kind.into(),
            isolate: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Our push script (`push.lua` says how it differs from apalis-redis' own).
static PUSH: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("push.lua")));

/// Messages per script call: a huge call risks the client's response timeout, which would
/// leave it unknown whether the messages were stored.
const PUSH_CHUNK: usize = 500;

/// How long the api trusts a depth it read (plus its own pushes since).
const DEPTH_CACHE: Duration = Duration::from_millis(20);

/// Pushes envelopes onto apalis-redis queues and wakes idle workers.
#[derive(Clone)]
pub struct MessageQueue {
    conn: ConnectionManager,
    keys: Keys,
    max_ready: usize,
    /// queue → (when read, depth then + our pushes since)
    depth_cache: Arc<Mutex<HashMap<String, (Instant, usize)>>>,
}

impl std::fmt::Debug for MessageQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageQueue")
            .field("prefix", &self.keys.prefix())
            .field("max_ready", &self.max_ready)
            .finish()
    }
}

impl MessageQueue {
    pub fn new(conn: ConnectionManager, keys: Keys, max_ready: usize) -> Self {
        Self {
            conn,
            keys,
            max_ready,
            depth_cache: Arc::default(),
        }
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn max_ready(&self) -> usize {
        self.max_ready
    }

    /// The apalis-redis configuration of one of our queues. Also used by the worker, so
    /// pushes and fetches agree on key names.
    pub fn apalis_config(keys: &Keys, queue: &str) -> apalis_redis::Config {
        apalis_redis::Config::default().queue(keys.apalis_queue(queue))
    }

    /// Messages of `queue` waiting in Redis and not yet fetched by a worker: on its ready list,
    /// and in its scheduled set, where apalis' own push (that of earlier releases) parks them
    /// until a fetch promotes them.
    pub async fn depth(&self, queue: &str) -> Result<usize, redis::RedisError> {
        let cfg = Self::apalis_config(&self.keys, queue);
        let mut conn = self.conn.clone();
        let (active, scheduled): (usize, usize) = redis::pipe()
            .cmd("LLEN")
            .arg(cfg.active_jobs_list())
            .cmd("ZCARD")
            .arg(cfg.scheduled_jobs_set())
            .query_async(&mut conn)
            .await?;
        Ok(active + scheduled)
    }

    /// Room left in `queue` under `QUEUE_MAX_READY`.
    pub async fn room(&self, queue: &str) -> Result<usize, redis::RedisError> {
        Ok(self.max_ready.saturating_sub(self.depth(queue).await?))
    }

    /// Like [`MessageQueue::room`], but trusting a reading up to 20 ms old (counting this
    /// process's pushes since): under load the api saves a Redis round trip per request,
    /// at the cost of overshooting the bound by what other processes pushed in 20 ms.
    pub async fn room_cached(&self, queue: &str) -> Result<usize, redis::RedisError> {
        let cached = self
            .depth_cache
            .lock()
            .ok()
            .and_then(|c| c.get(queue).copied())
            .filter(|(at, _)| at.elapsed() < DEPTH_CACHE);
        let depth = match cached {
            Some((_, depth)) => depth,
            None => {
                let depth = self.depth(queue).await?;
                if let Ok(mut c) = self.depth_cache.lock() {
                    c.insert(queue.to_string(), (Instant::now(), depth));
                }
                depth
            }
        };
        Ok(self.max_ready.saturating_sub(depth))
    }

    /// Pushes envelopes (all of `queue`) in one script call per 500, straight onto the queue's
    /// ready list, then wakes that queue's idle workers.
    pub async fn push(&self, queue: &str, envelopes: &[Envelope]) -> Result<(), PushError> {
        if envelopes.is_empty() {
            return Ok(());
        }
        let cfg = Self::apalis_config(&self.keys, queue);
        let mut conn = self.conn.clone();
        for chunk in envelopes.chunks(PUSH_CHUNK) {
            let mut call = PUSH.prepare_invoke();
            call.key(cfg.job_data_hash())
                .key(cfg.active_jobs_list())
                .key(cfg.signal_list())
                .key(cfg.job_meta_hash());
            for e in chunk {
                // A fresh message id per push (the task id travels in the body); serializing
                // a struct of a uuid and a string cannot fail.
                call.arg(Uuid::now_v7().simple().to_string())
                    .arg(serde_json::to_vec(e).unwrap_or_default());
            }
            let _: usize = call.invoke_async(&mut conn).await?;
        }
        if let Ok(mut c) = self.depth_cache.lock() {
            if let Some(entry) = c.get_mut(queue) {
                entry.1 += envelopes.len();
            }
        }
        let _: i64 = redis::cmd("PUBLISH")
            .arg(self.keys.wake_channel(queue))
            .arg(envelopes.len())
            .query_async(&mut conn)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use apalis::prelude::WorkerContext;

    use super::*;

    /// `push.lua` writes apalis-redis' layout itself: apalis' own fetch script must read back
    /// every message, body and meta, or no worker would ever start a task (an apalis-redis
    /// upgrade that changes what its fetch reads fails here first).
    #[tokio::test]
    async fn apalis_fetches_every_message_our_push_wrote() {
        let url =
            std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let client = redis::Client::open(url).expect("TEST_REDIS_URL");
        let mut conn = ConnectionManager::new(client).await.expect("Redis");
        let keys = Keys::new(format!("pushtest{}", Uuid::now_v7().simple()));
        let queue = MessageQueue::new(conn.clone(), keys.clone(), 1000);
        let mut sent: Vec<Envelope> = (0..3)
            .map(|_| Envelope::new(Uuid::now_v7(), "noop"))
            .collect();
        sent.push(Envelope {
            isolate: true,
            ..Envelope::new(Uuid::now_v7(), "export")
        });
        queue.push("q", &sent).await.expect("push");
        assert_eq!(queue.depth("q").await.unwrap(), sent.len());

        let cfg = MessageQueue::apalis_config(&keys, "q");
        let scheduled: usize = redis::cmd("ZCARD")
            .arg(cfg.scheduled_jobs_set())
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(
            scheduled, 0,
            "a due message was parked in the scheduled set"
        );
        // apalis' fetch only serves a registered worker.
        let worker = WorkerContext::new("push-test");
        let _: () = redis::cmd("ZADD")
            .arg(cfg.workers_set())
            .arg(chrono::Utc::now().timestamp())
            .arg(worker.name())
            .query_async(&mut conn)
            .await
            .unwrap();
        let fetched = apalis_redis::queries::fetch_next(&mut conn, &worker, &cfg)
            .await
            .expect("apalis reads what we pushed");
        let got: Vec<Envelope> = fetched
            .iter()
            .map(|t| serde_json::from_slice(&t.args).expect("the envelope"))
            .collect();
        assert_eq!(got, sent, "every message, in push order");
        assert!(fetched.iter().all(|t| t.attempt() == 0));
        assert_eq!(queue.depth("q").await.unwrap(), 0);

        let left: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", keys.prefix()))
            .query_async(&mut conn)
            .await
            .unwrap();
        if !left.is_empty() {
            let _: () = redis::cmd("DEL")
                .arg(&left)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }
}
