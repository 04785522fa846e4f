//! Wake-ups for long-polls and event streams: one Redis pub/sub connection per api process,
//! subscribed to the channels of the tasks someone is waiting on. Best effort: waiters also
//! re-read Postgres every second, so a lost message or a Redis outage only adds latency.
//!
//! Bounded: each requester holds at most [`Limits::per_requester`] waiters (event streams
//! and long-polls) at once, a stream lasts at most [`Limits::stream_lifetime`] (the client
//! resumes with `Last-Event-ID`), and a Redis (un)subscribe never blocks a waiter for longer
//! than [`Limits::subscribe_timeout`] nor holds a lock while it talks to Redis.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use engine::redis_conn::Keys;
use futures::StreamExt;
use redis::aio::PubSubSink;
use tokio::sync::broadcast;
use uuid::Uuid;

struct Channel {
    tx: broadcast::Sender<()>,
    waiters: usize,
}

/// Bounds on what clients may hold open.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Event streams plus long-polls one requester may hold at once (429 above).
    pub per_requester: usize,
    /// After this long an event stream ends; the client reconnects with `Last-Event-ID`.
    pub stream_lifetime: Duration,
    /// Longest wait for Redis to confirm a (un)subscribe; the waiter then relies on its
    /// periodic re-read of Postgres.
    pub subscribe_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            per_requester: 16,
            stream_lifetime: Duration::from_secs(15 * 60),
            subscribe_timeout: Duration::from_secs(2),
        }
    }
}

struct Inner {
    keys: Keys,
    limits: Limits,
    channels: Mutex<HashMap<Uuid, Channel>>,
    /// A clone is taken out before any I/O: no lock is held while Redis answers.
    sink: Mutex<Option<PubSubSink>>,
    /// Waiters held per requester.
    held: Mutex<HashMap<String, usize>>,
}

#[derive(Clone)]
pub struct EventHub {
    inner: Arc<Inner>,
}

/// A waiter's handle; dropping it unsubscribes when it was the last one for its task.
pub struct Subscription {
    pub rx: broadcast::Receiver<()>,
    id: Uuid,
    hub: EventHub,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let last = match self.hub.inner.channels.lock() {
            Ok(mut map) => match map.get_mut(&self.id) {
                Some(ch) if ch.waiters <= 1 => {
                    map.remove(&self.id);
                    true
                }
                Some(ch) => {
                    ch.waiters -= 1;
                    false
                }
                None => false,
            },
            Err(_) => false,
        };
        if last {
            let hub = self.hub.clone();
            let channel = hub.inner.keys.task_channel(self.id);
            tokio::spawn(async move {
                if let Some(mut sink) = hub.sink() {
                    let _ = tokio::time::timeout(
                        hub.inner.limits.subscribe_timeout,
                        sink.unsubscribe(channel),
                    )
                    .await;
                }
            });
        }
    }
}

/// One of a requester's waiters; dropping it frees the place.
pub struct Permit {
    requester: String,
    hub: EventHub,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut held = self
            .hub
            .inner
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = held.get_mut(&self.requester) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.requester);
            }
        }
    }
}

impl EventHub {
    /// Starts the hub's connection loop in the background.
    pub fn start(redis_url: String, keys: Keys) -> Self {
        Self::start_with(redis_url, keys, Limits::default())
    }

    /// [`EventHub::start`] with other bounds.
    pub fn start_with(redis_url: String, keys: Keys, limits: Limits) -> Self {
        let hub = Self {
            inner: Arc::new(Inner {
                keys,
                limits,
                channels: Mutex::new(HashMap::new()),
                sink: Mutex::new(None),
                held: Mutex::new(HashMap::new()),
            }),
        };
        tokio::spawn(hub.clone().run(redis_url));
        hub
    }

    pub fn limits(&self) -> Limits {
        self.inner.limits
    }

    /// A place for one more waiter of `requester`, or `None` when it holds its maximum.
    pub fn admit(&self, requester: &str) -> Option<Permit> {
        let mut held = self.inner.held.lock().unwrap_or_else(|e| e.into_inner());
        let n = held.entry(requester.to_string()).or_insert(0);
        if *n >= self.inner.limits.per_requester {
            return None;
        }
        *n += 1;
        Some(Permit {
            requester: requester.to_string(),
            hub: self.clone(),
        })
    }

    fn sink(&self) -> Option<PubSubSink> {
        self.inner
            .sink
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_sink(&self, sink: Option<PubSubSink>) {
        *self.inner.sink.lock().unwrap_or_else(|e| e.into_inner()) = sink;
    }

    pub async fn subscribe(&self, id: Uuid) -> Subscription {
        let (rx, first) = {
            let mut map = self
                .inner
                .channels
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let ch = map.entry(id).or_insert_with(|| Channel {
                tx: broadcast::channel(4).0,
                waiters: 0,
            });
            ch.waiters += 1;
            (ch.tx.subscribe(), ch.waiters == 1)
        };
        if first {
            if let Some(mut sink) = self.sink() {
                let channel = self.inner.keys.task_channel(id);
                let subscribed = tokio::time::timeout(
                    self.inner.limits.subscribe_timeout,
                    sink.subscribe(channel),
                )
                .await;
                if subscribed.is_err() {
                    tracing::debug!(task.id = %id, "subscribe timed out; the waiter re-reads Postgres");
                }
            }
        }
        Subscription {
            rx,
            id,
            hub: self.clone(),
        }
    }

    async fn run(self, redis_url: String) {
        let prefix = self.inner.keys.task_channel_prefix();
        let mut delay = Duration::from_millis(200);
        loop {
            let connected =
                async {
                    // Connecting and re-subscribing are bounded: a Redis that accepts but does
                    // not answer must not stall the hub (waiters keep re-reading Postgres).
                    let setup = async {
                        let client = redis::Client::open(redis_url.as_str())?;
                        let pubsub = client.get_async_pubsub().await?;
                        let (mut sink, stream) = pubsub.split();
                        let current: Vec<Uuid> = self
                            .inner
                            .channels
                            .lock()
                            .map(|m| m.keys().copied().collect())
                            .unwrap_or_default();
                        for id in &current {
                            sink.subscribe(self.inner.keys.task_channel(*id)).await?;
                        }
                        Ok::<_, redis::RedisError>((sink, stream))
                    };
                    let (sink, mut stream) =
                        match tokio::time::timeout(self.inner.limits.subscribe_timeout * 5, setup)
                            .await
                        {
                            Ok(result) => result?,
                            Err(_) => {
                                return Err(redis::RedisError::from((
                                    redis::ErrorKind::Io,
                                    "pub/sub connection timed out",
                                )))
                            }
                        };
                    self.set_sink(Some(sink));
                    // Anything may have changed while we were away.
                    self.notify_all();
                    while let Some(msg) = stream.next().await {
                        let id = msg
                            .get_channel_name()
                            .strip_prefix(prefix.as_str())
                            .and_then(|s| Uuid::parse_str(s).ok());
                        if let Some(id) = id {
                            if let Ok(map) = self.inner.channels.lock() {
                                if let Some(ch) = map.get(&id) {
                                    let _ = ch.tx.send(());
                                }
                            }
                        }
                    }
                    Ok::<(), redis::RedisError>(())
                };
            if let Err(e) = connected.await {
                tracing::debug!(error = %e, "task event hub disconnected");
            } else {
                delay = Duration::from_millis(200);
            }
            self.set_sink(None);
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    fn notify_all(&self) {
        if let Ok(map) = self.inner.channels.lock() {
            for ch in map.values() {
                let _ = ch.tx.send(());
            }
        }
    }
}
