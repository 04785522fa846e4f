//! Wake-ups for long-polls and event streams: one Redis pub/sub connection per api process,
//! subscribed to the channels of the tasks someone is waiting on. Best effort: waiters also
//! re-read Postgres every second, so a lost message or a Redis outage only adds latency.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::StreamExt;
use jobs::redis_conn::Keys;
use redis::aio::PubSubSink;
use tokio::sync::{broadcast, Mutex as AsyncMutex};
use uuid::Uuid;

struct Channel {
    tx: broadcast::Sender<()>,
    waiters: usize,
}

struct Inner {
    keys: Keys,
    channels: Mutex<HashMap<Uuid, Channel>>,
    sink: AsyncMutex<Option<PubSubSink>>,
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
                if let Some(sink) = hub.inner.sink.lock().await.as_mut() {
                    let _ = sink.unsubscribe(channel).await;
                }
            });
        }
    }
}

impl EventHub {
    /// Starts the hub's connection loop in the background.
    pub fn start(redis_url: String, keys: Keys) -> Self {
        let hub = Self {
            inner: Arc::new(Inner {
                keys,
                channels: Mutex::new(HashMap::new()),
                sink: AsyncMutex::new(None),
            }),
        };
        tokio::spawn(hub.clone().run(redis_url));
        hub
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
            if let Some(sink) = self.inner.sink.lock().await.as_mut() {
                let _ = sink.subscribe(self.inner.keys.task_channel(id)).await;
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
            let connected = async {
                let client = redis::Client::open(redis_url.as_str())?;
                let pubsub = client.get_async_pubsub().await?;
                let (mut sink, mut stream) = pubsub.split();
                let current: Vec<Uuid> = self
                    .inner
                    .channels
                    .lock()
                    .map(|m| m.keys().copied().collect())
                    .unwrap_or_default();
                for id in &current {
                    sink.subscribe(self.inner.keys.task_channel(*id)).await?;
                }
                *self.inner.sink.lock().await = Some(sink);
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
            *self.inner.sink.lock().await = None;
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
