//! The schedule loop every replica runs. There is no leader: each pass locks the due rows no
//! other replica holds (`FOR UPDATE SKIP LOCKED`) and, per row, creates the tick's task and
//! moves `next_run_at` past now in the same transaction. A replica that dies mid-pass rolls
//! back and the row is due again for the next one; a tick's task is also keyed
//! `schedule:<id>:<tick>`, so it exists at most once whatever happens.

use std::{collections::HashMap, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{store, CatchUp, Schedule, REQUESTER};
use crate::{
    enqueue::{Enqueued, Enqueuer, Request},
    task::{KindInfo, TaskRecord},
};

/// Due schedules handled per transaction.
const BATCH: i64 = 16;

#[derive(Clone)]
pub struct Ticker {
    pool: PgPool,
    enqueuer: Enqueuer,
    kinds: Arc<HashMap<&'static str, KindInfo>>,
    /// Woken when a tick created tasks Redis did not take (the relay pushes them).
    relay_wake: Option<Arc<Notify>>,
}

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Pass {
    /// (schedule, tick, task) of every task created.
    pub created: Vec<(String, DateTime<Utc>, Uuid)>,
    /// Missed ticks left out by the catch-up policy or its bound.
    pub skipped: u64,
}

impl Ticker {
    pub fn new(
        pool: PgPool,
        enqueuer: Enqueuer,
        kinds: impl IntoIterator<Item = KindInfo>,
    ) -> Self {
        Self {
            pool,
            enqueuer,
            kinds: Arc::new(kinds.into_iter().map(|k| (k.name, k)).collect()),
            relay_wake: None,
        }
    }

    pub fn wake_relay(mut self, notify: Arc<Notify>) -> Self {
        self.relay_wake = Some(notify);
        self
    }

    /// Ticks every `every` until `shutdown`. Errors (Postgres down) are logged and retried on
    /// the next pass: nothing is lost, the rows stay due.
    pub async fn run(self, every: Duration, shutdown: CancellationToken) {
        loop {
            match self.pass(Utc::now()).await {
                Ok(pass) if pass.skipped > 0 => {
                    tracing::info!(
                        skipped = pass.skipped,
                        "schedules: missed ticks skipped by their catch-up policy"
                    )
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "schedules: pass failed; due schedules stay due")
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }

    /// One pass as of `now` (tests push a clock through it): every due schedule gets its
    /// tick's task (or, catching up, one per missed tick under `all`).
    pub async fn pass(&self, now: DateTime<Utc>) -> Result<Pass, sqlx::Error> {
        let mut pass = Pass::default();
        loop {
            let mut tx = self.pool.begin().await?;
            let due = store::lock_due(&mut tx, now, BATCH).await?;
            if due.is_empty() {
                return Ok(pass);
            }
            let mut pushes = Vec::new();
            for schedule in &due {
                self.fire(&mut tx, schedule, now, &mut pass, &mut pushes)
                    .await?;
            }
            tx.commit().await?;
            self.push(pushes).await;
        }
    }

    /// After the commit: pushes what Redis had room for; the relay takes the rest.
    async fn push(&self, pushes: Vec<(TaskRecord, bool)>) {
        let mut left_for_relay = false;
        for (rec, will_push) in pushes {
            left_for_relay |= !will_push;
            self.enqueuer.push_created(&rec, will_push).await;
        }
        if let (true, Some(wake)) = (left_for_relay, &self.relay_wake) {
            wake.notify_one();
        }
    }

    async fn fire(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        schedule: &Schedule,
        now: DateTime<Utc>,
        pass: &mut Pass,
        pushes: &mut Vec<(TaskRecord, bool)>,
    ) -> Result<(), sqlx::Error> {
        let cadence = match schedule.cadence() {
            Ok(c) => c,
            Err(e) => {
                // Only a hand-edited row gets here: hold it back a minute rather than spin.
                tracing::error!(schedule = %schedule.id, error = %e, "schedule has an invalid cadence; not run");
                let later = now + chrono::Duration::minutes(1);
                return store::record_run(tx, &schedule.id, Some(later), None, None).await;
            }
        };
        let next = cadence
            .next_after(now)
            .unwrap_or(now + chrono::Duration::days(1));
        let Some(kind) = self.kinds.get(schedule.kind.as_str()).copied() else {
            tracing::error!(schedule = %schedule.id, kind = %schedule.kind, "schedule names a kind this replica does not know; tick skipped");
            return store::record_run(tx, &schedule.id, Some(next), None, None).await;
        };
        // The ticks in [next_run_at, now]: the due one and any missed since.
        let after = schedule.next_run_at - chrono::Duration::milliseconds(1);
        let limit = match schedule.catch_up_policy() {
            CatchUp::Skip => 1,
            CatchUp::All => schedule.max_catch_up.max(1) as usize,
        };
        let (ticks, skipped) = cadence.ticks_between(after, now, limit);
        pass.skipped += skipped;
        if skipped > 0 {
            tracing::info!(schedule = %schedule.id, skipped, policy = %schedule.catch_up, "schedule: missed ticks not run");
        }
        let mut last = None;
        for tick in &ticks {
            let key = format!("schedule:{}:{}", schedule.id, tick.timestamp());
            let params = tick_params(&schedule.params, &schedule.id, *tick, skipped);
            let (outcome, will_push) = self
                .enqueuer
                .enqueue_in(
                    tx,
                    Request {
                        kind,
                        params,
                        requester: REQUESTER,
                        idempotency_key: Some(&key),
                        request_id: None,
                        run_at: None,
                    },
                )
                .await?;
            let rec = match outcome {
                Enqueued::Created(rec) => {
                    tracing::info!(schedule = %schedule.id, task.id = %rec.id, task.kind = kind.name, %tick, "schedule tick: task created");
                    pass.created.push((schedule.id.clone(), *tick, rec.id));
                    pushes.push((rec.clone(), will_push));
                    rec
                }
                // The tick's task exists already (a pass that committed it died before
                // moving the row on, which the transaction rules out, or a hand-made task).
                Enqueued::Replayed(rec) | Enqueued::Conflict(rec) => rec,
            };
            last = Some((*tick, rec.id));
        }
        store::record_run(
            tx,
            &schedule.id,
            Some(next),
            last.map(|(tick, _)| tick),
            last.map(|(_, id)| id),
        )
        .await
    }

    /// "Run now": one task of schedule `id` outside its cadence (its next tick stays as it
    /// is). `None` when there is no such schedule.
    pub async fn run_now(
        &self,
        id: &str,
        requester: &str,
        idempotency_key: Option<&str>,
        request_id: Option<&str>,
    ) -> Result<Option<Result<Enqueued, UnknownKind>>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let Some(schedule) = store::get(&mut tx, id).await? else {
            return Ok(None);
        };
        let Some(kind) = self.kinds.get(schedule.kind.as_str()).copied() else {
            return Ok(Some(Err(UnknownKind(schedule.kind))));
        };
        let mut params = schedule.params.clone();
        if let Value::Object(map) = &mut params {
            map.insert("trigger".into(), json!("manual"));
            map.insert("scheduleId".into(), json!(schedule.id));
        }
        let (outcome, will_push) = self
            .enqueuer
            .enqueue_in(
                &mut tx,
                Request {
                    kind,
                    params,
                    requester,
                    idempotency_key,
                    request_id,
                    run_at: None,
                },
            )
            .await?;
        let mut pushes = Vec::new();
        if let Enqueued::Created(rec) = &outcome {
            store::record_run(&mut tx, id, None, None, Some(rec.id)).await?;
            pushes.push((rec.clone(), will_push));
        }
        tx.commit().await?;
        self.push(pushes).await;
        Ok(Some(Ok(outcome)))
    }
}

/// A schedule names a kind the registry does not have (a row left by an older deploy).
#[derive(Debug, thiserror::Error)]
#[error("the schedule's kind {0:?} is not registered")]
pub struct UnknownKind(pub String);

/// The schedule's params, plus where the task came from.
fn tick_params(params: &Value, id: &str, tick: DateTime<Utc>, skipped: u64) -> Value {
    let mut params = params.clone();
    if let Value::Object(map) = &mut params {
        map.insert("trigger".into(), json!("schedule"));
        map.insert("scheduleId".into(), json!(id));
        map.insert("tick".into(), json!(tick));
        if skipped > 0 {
            map.insert("missedTicks".into(), json!(skipped));
        }
    }
    params
}
