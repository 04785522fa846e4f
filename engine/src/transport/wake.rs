//! Waking idle apalis workers when work arrives.
//!
//! apalis-redis only polls, and its `IntervalStrategy` loses wake-ups: when its delay fires
//! it is replaced without being polled, so nothing is armed and a worker whose fetch came
//! back empty sleeps until the next heartbeat (notes/apalis-1.0.md: 29 s stalls measured).
//! [`WakeStrategy`] keeps its timer armed at every call, and adds a real wake-up path: every
//! push publishes on the queue's wake channel, [`listen`] relays that to the queue's
//! [`WakeSignal`], and the strategy wakes the worker at once, plus once more a few
//! milliseconds later in case the first wake-up landed during a fetch that had already
//! looked at the queue.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    task::{Context, Poll},
    time::Duration,
};

use crate::redis_conn::Keys;
use apalis::prelude::{PollSnapshot, PollStrategy};
use futures::{task::AtomicWaker, StreamExt};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

/// Set by the listener, consumed by the queue's strategy; also carries whether the queue is
/// paused, which its consumer watches (see `super::pause`).
pub struct WakeSignal {
    pending: AtomicBool,
    waker: AtomicWaker,
    paused: tokio::sync::watch::Sender<bool>,
}

impl Default for WakeSignal {
    fn default() -> Self {
        Self {
            pending: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            paused: tokio::sync::watch::Sender::new(false),
        }
    }
}

impl WakeSignal {
    pub fn wake(&self) {
        self.pending.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Marks the queue paused or not; the consumer stops its apalis worker while paused.
    pub fn set_paused(&self, paused: bool) {
        self.paused
            .send_if_modified(|p| std::mem::replace(p, paused) != paused);
    }

    /// Follows the paused flag.
    pub fn paused(&self) -> tokio::sync::watch::Receiver<bool> {
        self.paused.subscribe()
    }
}

/// Delay of the second wake-up after a notification.
const FOLLOW_UP: Duration = Duration::from_millis(3);

pub struct WakeStrategy {
    signal: Arc<WakeSignal>,
    interval: Duration,
    tick: Pin<Box<Sleep>>,
    follow_up: Option<Pin<Box<Sleep>>>,
}

impl WakeStrategy {
    pub fn new(signal: Arc<WakeSignal>, interval: Duration) -> Self {
        Self {
            signal,
            interval,
            tick: Box::pin(tokio::time::sleep(interval)),
            follow_up: None,
        }
    }
}

impl PollStrategy for WakeStrategy {
    fn poll_drive(&mut self, cx: &mut Context<'_>, _: &PollSnapshot) -> Poll<Option<()>> {
        let mut fired = false;
        self.signal.waker.register(cx.waker());
        if self.signal.pending.swap(false, Ordering::AcqRel) {
            fired = true;
            self.follow_up = Some(Box::pin(tokio::time::sleep(FOLLOW_UP)));
        }
        if let Some(follow_up) = self.follow_up.as_mut() {
            if follow_up.as_mut().poll(cx).is_ready() {
                fired = true;
                self.follow_up = None;
            }
        }
        // Re-arm after every firing, and poll the new deadline so a waker is registered:
        // the contract apalis' own interval strategy breaks.
        while self.tick.as_mut().poll(cx).is_ready() {
            fired = true;
            let next = Instant::now() + self.interval;
            self.tick.as_mut().reset(next);
        }
        if fired {
            Poll::Ready(Some(()))
        } else {
            Poll::Pending
        }
    }
}

/// Subscribes to the wake channels of `signals`' queues and fires the matching signal on
/// each message. Reconnects with backoff; after a reconnect it wakes every queue, in case
/// a push happened while it was away.
pub async fn listen(
    redis_url: String,
    keys: Keys,
    signals: HashMap<String, Arc<WakeSignal>>,
    shutdown: CancellationToken,
) {
    let by_channel: HashMap<String, Arc<WakeSignal>> = signals
        .iter()
        .map(|(q, s)| (keys.wake_channel(q), s.clone()))
        .collect();
    let mut delay = Duration::from_millis(100);
    loop {
        let session = async {
            let client = redis::Client::open(redis_url.as_str())?;
            let mut pubsub = client.get_async_pubsub().await?;
            for channel in by_channel.keys() {
                pubsub.subscribe(channel).await?;
            }
            for signal in by_channel.values() {
                signal.wake();
            }
            let mut messages = pubsub.on_message();
            while let Some(msg) = messages.next().await {
                if let Some(signal) = by_channel.get(msg.get_channel_name()) {
                    signal.wake();
                }
            }
            Ok::<(), redis::RedisError>(())
        };
        let started = Instant::now();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            result = session => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "wake listener disconnected");
                }
            }
        }
        if started.elapsed() > Duration::from_secs(30) {
            delay = Duration::from_millis(100);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}
