//! Waiting for tasks on their change notifications, as the api's long-poll does: subscribe
//! to the task's Redis channel, then read Postgres (the truth) on every message. A slow
//! re-read is only the safety net for a lost message or a Redis that is down.

use std::time::Duration;

use engine::{TaskRecord, TaskStatus};
use futures::{Stream, StreamExt};
use tokio::time::{timeout, timeout_at, Instant};
use uuid::Uuid;

use crate::{workers::RunningWorker, TestApp};

/// Longest gap between two reads of Postgres when no notification comes.
const SAFETY_NET: Duration = Duration::from_millis(250);
/// Connecting to Redis for notifications must not stall a wait (fault tests stop Redis).
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Notifications of task changes; without Redis, only the safety net's ticks.
struct Changes {
    messages: Option<std::pin::Pin<Box<dyn Stream<Item = redis::Msg> + Send>>>,
}

impl Changes {
    /// `pattern`: `channel` is a glob (`PSUBSCRIBE`) rather than one channel name.
    async fn subscribe(redis_url: &str, channel: String, pattern: bool) -> Self {
        let subscribed = timeout(SUBSCRIBE_TIMEOUT, async {
            let client = redis::Client::open(redis_url)?;
            let mut pubsub = client.get_async_pubsub().await?;
            if pattern {
                pubsub.psubscribe(&channel).await?;
            } else {
                pubsub.subscribe(&channel).await?;
            }
            Ok::<_, redis::RedisError>(pubsub.into_on_message())
        })
        .await;
        Self {
            messages: match subscribed {
                Ok(Ok(stream)) => Some(Box::pin(stream)),
                _ => None,
            },
        }
    }

    /// Returns on the next notification, or after the safety net's interval, whichever is
    /// first (never after `deadline`).
    async fn next(&mut self, deadline: Instant) {
        let until = deadline.min(Instant::now() + SAFETY_NET);
        match &mut self.messages {
            Some(messages) => {
                if let Ok(None) = timeout_at(until, messages.next()).await {
                    // The connection ended: the safety net alone from now on.
                    self.messages = None;
                }
            }
            None => tokio::time::sleep_until(until).await,
        }
    }
}

impl TestApp {
    /// Waits until the task is `status`; fails if it ends in another status or is not
    /// there within the app's wait timeout.
    pub async fn wait_for(&self, id: Uuid, status: TaskStatus) -> TaskRecord {
        self.wait_for_within(id, status, self.wait_timeout).await
    }

    /// [`TestApp::wait_for`] with its own timeout.
    pub async fn wait_for_within(
        &self,
        id: Uuid,
        status: TaskStatus,
        within: Duration,
    ) -> TaskRecord {
        let rec = self
            .wait_until(id, within, |s| s == status || s.is_terminal())
            .await;
        assert_eq!(
            rec.status(),
            status,
            "task {id} ended {} (attempts {}, error {:?})",
            rec.status,
            rec.attempts,
            rec.error
        );
        rec
    }

    /// Waits until the task has ended (completed, failed, cancelled or dead).
    pub async fn wait_finished(&self, id: Uuid, within: Duration) -> TaskRecord {
        self.wait_until(id, within, TaskStatus::is_terminal).await
    }

    /// Waits until `done(status)` holds; fails with the task's state after `within`.
    pub async fn wait_until(
        &self,
        id: Uuid,
        within: Duration,
        done: impl Fn(TaskStatus) -> bool,
    ) -> TaskRecord {
        self.wait_until_record(id, within, |rec| done(rec.status()))
            .await
    }

    /// Waits until `done(task)` holds (a stage, an attempt count…); fails with the task's
    /// state after `within`.
    pub async fn wait_until_record(
        &self,
        id: Uuid,
        within: Duration,
        done: impl Fn(&TaskRecord) -> bool,
    ) -> TaskRecord {
        let deadline = Instant::now() + within;
        // Subscribed before the first read, so no change falls between the two.
        let mut changes =
            Changes::subscribe(&self.redis_url, self.keys.task_channel(id), false).await;
        loop {
            let rec = self.task(id).await;
            if done(&rec) {
                return rec;
            }
            if Instant::now() >= deadline {
                panic!(
                    "task {id} still {} (stage {:?}) after {within:?} (attempts {}, error {:?})",
                    rec.status, rec.stage, rec.attempts, rec.error
                );
            }
            changes.next(deadline).await;
        }
    }

    /// Runs the queues until no task of the test is pending, retrying or running (with the
    /// app's workers, or with workers for every queue started for the drain when the app
    /// has none). Fails listing the tasks left after the app's wait timeout.
    pub async fn drain(&self) {
        self.drain_within(self.wait_timeout).await
    }

    /// [`TestApp::drain`] with its own timeout.
    pub async fn drain_within(&self, within: Duration) {
        let deadline = Instant::now() + within;
        let mut changes = Changes::subscribe(
            &self.redis_url,
            format!("{}*", self.keys.task_channel_prefix()),
            true,
        )
        .await;
        let temporary: Option<RunningWorker> =
            (!self.has_workers()).then(|| self.start_worker(&jobs::queues::ALL));
        let left = loop {
            let left = self.unfinished().await;
            if left.is_empty() {
                // A job may enqueue follow-up work just after its completion commits: empty
                // counts only if it still is one notification or safety-net tick later.
                changes.next(deadline).await;
                let again = self.unfinished().await;
                if again.is_empty() {
                    break again;
                }
                continue;
            }
            if Instant::now() >= deadline {
                break left;
            }
            changes.next(deadline).await;
        };
        if let Some(worker) = temporary {
            worker.stop().await;
        }
        assert!(
            left.is_empty(),
            "{} task(s) left after draining for {within:?}:\n{}",
            left.len(),
            left.join("\n")
        );
    }

    /// One line per task that still has work to do.
    async fn unfinished(&self) -> Vec<String> {
        let rows: Vec<(Uuid, String, String, i32, serde_json::Value)> = sqlx::query_as(
            "SELECT id, kind, status, attempts, coalesce(error, 'null'::jsonb) FROM tasks \
             WHERE status IN ('pending', 'retrying', 'running') ORDER BY created_at",
        )
        .fetch_all(&self.pool)
        .await
        .expect("list unfinished tasks");
        rows.into_iter()
            .map(|(id, kind, status, attempts, error)| {
                format!("  {id} {kind} {status} (attempts {attempts}, error {error})")
            })
            .collect()
    }
}
