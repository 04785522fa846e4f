//! What a handler sees of its task: params, the database, progress, cancellation, and the
//! two ways to finish (return a result, or complete inside its own transaction).

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use serde::de::DeserializeOwned;
use serde_json::Value;
use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::Mutex;
use uuid::Uuid;

pub use crate::outcome::{Committed, Done, Effect, JobError};
use crate::{
    enqueue::Enqueuer,
    env::EngineConfig,
    group::{GroupCommit, GroupWrite, Groups},
    metrics::Metrics,
    progress::{Notifier, ProgressStore},
    redis_conn::Keys,
    store,
    transport::MessageQueue,
};
use redis::aio::ConnectionManager;

/// Process-wide resources every task can use: the engine's own, and the product's `state`
/// (its integrations and configuration), which the engine never looks into.
pub struct Runtime<S> {
    pub pool: PgPool,
    /// Claims and lease renewals: commits that need not wait for the disk
    /// ([`crate::db::bookkeeping_pool`] says why that is safe).
    pub bookkeeping: PgPool,
    pub config: EngineConfig,
    pub progress: ProgressStore,
    pub notifier: Notifier,
    /// Lets a task create tasks (follow-ups, bulk fan-out).
    pub enqueuer: Enqueuer,
    pub redis: ConnectionManager,
    pub keys: Keys,
    /// Task metrics of this process, flushed to Redis by the worker (`crate::metrics`).
    pub metrics: Metrics,
    /// The kinds' group committers ([`TaskContext::complete_in_group`]).
    pub groups: Groups,
    pub state: S,
}

impl<S> Runtime<S> {
    /// Everything from one pool, one Redis connection and the configuration.
    pub fn new(pool: PgPool, config: EngineConfig, redis: ConnectionManager, state: S) -> Self {
        let keys = Keys::new(config.redis_prefix.clone());
        let queue = MessageQueue::new(redis.clone(), keys.clone(), config.queue_max_ready);
        Self {
            enqueuer: Enqueuer::new(pool.clone(), queue, config.task_ttl),
            progress: ProgressStore::new(redis.clone(), keys.clone(), config.task_ttl),
            notifier: Notifier::new(redis.clone(), keys.clone()),
            redis,
            keys,
            metrics: Metrics::default(),
            groups: Groups::default(),
            bookkeeping: crate::db::bookkeeping_pool(&pool),
            pool,
            config,
            state,
        }
    }
}

/// Signals set by the runner from outside the handler (lease renewal sees them first).
#[derive(Default)]
pub struct Flags {
    pub cancel: AtomicBool,
    pub lost: AtomicBool,
}

/// How often `check_cancel` may ask Postgres (it is meant to be called per chunk).
const CANCEL_POLL: Duration = Duration::from_millis(200);

pub struct TaskContext<S> {
    pub id: Uuid,
    pub kind: String,
    /// 1-based number of this attempt.
    pub attempt: i32,
    pub max_attempts: i32,
    pub requester: String,
    params: Value,
    runtime: Arc<Runtime<S>>,
    flags: Arc<Flags>,
    last_cancel_check: Mutex<Option<Instant>>,
    last_stage: Mutex<Option<String>>,
}

impl<S> TaskContext<S> {
    pub(crate) fn new(
        claimed: store::Claimed,
        runtime: Arc<Runtime<S>>,
        flags: Arc<Flags>,
    ) -> Self {
        Self {
            id: claimed.id,
            kind: claimed.kind,
            attempt: claimed.attempt,
            max_attempts: claimed.max_attempts,
            requester: claimed.requester,
            params: claimed.params,
            runtime,
            flags,
            last_cancel_check: Mutex::new(None),
            last_stage: Mutex::new(None),
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.runtime.pool
    }

    /// The product's state (see [`Runtime`]).
    pub fn state(&self) -> &S {
        &self.runtime.state
    }

    pub fn engine_config(&self) -> &EngineConfig {
        &self.runtime.config
    }

    pub fn enqueuer(&self) -> &Enqueuer {
        &self.runtime.enqueuer
    }

    pub fn metrics(&self) -> &Metrics {
        &self.runtime.metrics
    }

    /// Our Redis connection and key names (for maintenance work on Redis itself).
    pub fn redis(&self) -> (ConnectionManager, &Keys) {
        (self.runtime.redis.clone(), &self.runtime.keys)
    }

    /// The task's params as `T`. Params were validated before enqueue, so a mismatch means a
    /// row written by an incompatible version: permanent.
    pub fn params<T: DeserializeOwned>(&self) -> Result<T, JobError> {
        serde_json::from_value(self.params.clone()).map_err(|e| {
            JobError::permanent("invalid_params", format!("task params do not decode: {e}"))
        })
    }

    /// Reports progress (0–100) within `stage`. The percent goes to Redis; a stage change
    /// is also written to Postgres. Never fails the task: progress is advisory.
    pub async fn progress(&self, percent: u8, stage: &str) {
        let percent = i16::from(percent.min(100));
        if let Err(e) = self
            .runtime
            .progress
            .write(self.id, percent, stage, None)
            .await
        {
            tracing::debug!(task.id = %self.id, error = %e, "progress not written to redis");
        }
        let mut last = self.last_stage.lock().await;
        if last.as_deref() != Some(stage) {
            if let Err(e) = store::save_progress(
                &self.runtime.pool,
                self.id,
                self.attempt,
                percent,
                Some(stage),
            )
            .await
            {
                tracing::warn!(task.id = %self.id, error = %e, "stage change not persisted");
            } else {
                *last = Some(stage.to_string());
            }
        }
    }

    /// `Err(Cancelled)` once cancellation was requested (or `Err(Superseded)` if this attempt
    /// lost the task); call it between chunks of work and return the error as is.
    pub async fn check_cancel(&self) -> Result<(), JobError> {
        if self.flags.lost.load(Ordering::Relaxed) {
            return Err(JobError::Superseded);
        }
        if self.flags.cancel.load(Ordering::Relaxed) {
            return Err(JobError::Cancelled);
        }
        let mut last = self.last_cancel_check.lock().await;
        if last.is_some_and(|t| t.elapsed() < CANCEL_POLL) {
            return Ok(());
        }
        *last = Some(Instant::now());
        // A database hiccup here is no reason to fail the work: the lease renewal will see
        // the flag too.
        if store::cancel_requested(&self.runtime.pool, self.id)
            .await
            .unwrap_or(false)
        {
            self.flags.cancel.store(true, Ordering::Relaxed);
            return Err(JobError::Cancelled);
        }
        Ok(())
    }

    /// Completes the task inside `tx` and commits: the handler's writes and the completion
    /// happen together or not at all, which makes them exactly-once even if the task runs
    /// twice.
    pub async fn complete_in(
        &self,
        mut tx: Transaction<'static, Postgres>,
        result: Value,
    ) -> Result<Done, JobError> {
        let ttl = self.runtime.config.task_ttl;
        if !store::complete_in_tx(&mut tx, self.id, self.attempt, &result, ttl).await? {
            tx.rollback().await?;
            return Err(JobError::Superseded);
        }
        tx.commit().await?;
        Ok(Done::Committed(Committed(())))
    }

    /// Like [`TaskContext::complete_in`], but the effects are written by `W` in a
    /// transaction shared with the other tasks of this kind that finish meanwhile (see
    /// [`crate::group`]): one commit for many tasks, each still completed exactly with its
    /// own effects. `make` builds the writer the first time this runtime needs one.
    pub async fn complete_in_group<W: GroupWrite>(
        &self,
        make: impl FnOnce() -> W,
        item: W::Item,
    ) -> Result<Done, JobError> {
        let runtime = &self.runtime;
        let group = runtime.groups.get_or_init::<W>(|| {
            GroupCommit::new(runtime.pool.clone(), make(), runtime.config.task_ttl)
        });
        group.commit(self.id, self.attempt, item).await
    }
}
