//! Runs tasks delivered by the transport: claim → handler → record the outcome.
//!
//! Claims and plain completions of many concurrent tasks are grouped into one statement
//! each (a small batcher: whatever queued up while the previous statement ran goes into the
//! next), which is what lets one process run thousands of tasks per second while Postgres
//! holds every state. Handlers run on their own tokio task so a panic is caught, under a
//! timeout so a hung attempt is recorded, and with a lease that a background loop renews.

use std::{
    collections::HashMap,
    panic::AssertUnwindSafe,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, Weak,
    },
    time::Duration,
};

use chrono::Utc;
use futures::{
    future::{AbortHandle, Abortable, Aborted},
    FutureExt,
};
use tokio::sync::{Notify, OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock, Semaphore};
use tracing::Instrument;
use uuid::Uuid;

use crate::{
    batcher::{with_retries, Batcher},
    context::{Done, Flags, JobError, Runtime, TaskContext},
    kind::{KindHooks, KindSpec, Registry},
    slots::{SlotHold, Slots},
    store::{self, Claimed, Disposition},
    task::{AttemptError, TaskStatus},
    transport::Envelope,
};

/// Claim (and completion) statements allowed in flight at once per process. Measured
/// (BENCHMARKS.md): 4 in flight made batches smaller and cost Postgres more per task, halving
/// throughput (noop drain at concurrency 16: 1,040/s against 1,900/s with 1).
const BATCHES_IN_FLIGHT: usize = 1;

/// How long a claim made ahead of a free slot waits for others to share its statement: no
/// handler waits on it (every slot is busy), and at low concurrency claims otherwise carry
/// a task or five each, each statement costing Postgres far more than its rows. A claim for
/// a free slot never waits (see [`Batcher::spawn_patient`]).
const CLAIM_AHEAD_LINGER: Duration = Duration::from_millis(1);

/// How long a completion waits for others to share its commit (one WAL flush for all):
/// nothing waits on it but the task's status, since the handler's slot is already free.
const COMPLETION_LINGER: Duration = Duration::from_millis(2);

/// Completions waiting for their commit after their handler's slot was freed, at most, per
/// process (see [`Runner::complete_in_background`]).
const COMPLETIONS_PENDING: usize = 4096;

/// The relay is poked once per this many messages taken from Redis: often enough to keep
/// the queue fed during a backlog, rarely enough not to run a relay pass per message.
const RELAY_POKE_EVERY: u64 = 64;

/// How long a task of a kind this worker does not know waits before it is pushed again
/// (plus up to as much jitter): long enough that workers of an older version, during a
/// rolling deploy, do not bounce it between them in a hot loop.
const UNKNOWN_KIND_RETRY: Duration = Duration::from_secs(30);

/// Longest wait for the attempts in flight to finish before running a task alone.
const ALONE_WAIT: Duration = Duration::from_secs(2);

struct Inflight {
    kind: String,
    attempt: i32,
    flags: Arc<Flags>,
    abort: Option<AbortHandle>,
}

type ClaimReply = Result<Option<Claimed>, String>;
type CompleteReply = Result<bool, String>;

pub struct Runner<S> {
    shared: Arc<Runtime<S>>,
    registry: Arc<Registry<S>>,
    /// The registry's hooks, for outcomes recorded here.
    hooks: KindHooks,
    worker: String,
    /// Takes (task, whether a free slot waits on this claim).
    claimer: Batcher<(Uuid, bool), ClaimReply>,
    completer: Batcher<store::Completion, CompleteReply>,
    inflight: Mutex<HashMap<Uuid, Inflight>>,
    /// Poked when a message was taken from Redis, so the relay can refill the room.
    relay_wake: Arc<Notify>,
    taken: AtomicU64,
    stopping: AtomicBool,
    /// Ordinary attempts hold it shared; a task marked `isolate` holds it exclusively, so it
    /// starts only when nothing else runs here and nothing else starts while it runs.
    alone: Arc<RwLock<()>>,
    /// Permits of completions recorded in the background (see [`COMPLETIONS_PENDING`]).
    recording: Arc<Semaphore>,
}

/// An attempt's hold on [`Runner::alone`].
enum Gate {
    Shared(#[allow(dead_code)] OwnedRwLockReadGuard<()>),
    Alone(#[allow(dead_code)] OwnedRwLockWriteGuard<()>),
}

impl<S: Send + Sync + 'static> Runner<S> {
    /// `worker` names this process incarnation in task rows (`tasks.worker`).
    pub fn start(
        shared: Arc<Runtime<S>>,
        registry: Arc<Registry<S>>,
        worker: String,
        relay_wake: Arc<Notify>,
    ) -> Arc<Self> {
        let claimer = {
            let shared = shared.clone();
            let worker = worker.clone();
            let claim = move |asked: Vec<(Uuid, bool)>| {
                let shared = shared.clone();
                let worker = worker.clone();
                let ids: Vec<Uuid> = asked.into_iter().map(|(id, _)| id).collect();
                async move {
                    let lease = shared.config.task_lease;
                    let result = with_retries("claim", || {
                        store::claim(&shared.bookkeeping, &ids, &worker, lease)
                    })
                    .await;
                    match result {
                        Ok(claimed) => {
                            let running: Vec<Uuid> = claimed.iter().map(|c| c.id).collect();
                            shared.notifier.changed(&running);
                            let mut by_id: HashMap<Uuid, Claimed> =
                                claimed.into_iter().map(|c| (c.id, c)).collect();
                            ids.iter().map(|id| Ok(by_id.remove(id))).collect()
                        }
                        Err(e) => ids.iter().map(|_| Err(e.to_string())).collect(),
                    }
                }
            };
            Batcher::spawn_patient(
                256,
                BATCHES_IN_FLIGHT,
                CLAIM_AHEAD_LINGER,
                |(_, slot_waits): &(Uuid, bool)| *slot_waits,
                claim,
            )
        };
        let completer = {
            let shared = shared.clone();
            Batcher::spawn_lingering(
                256,
                BATCHES_IN_FLIGHT,
                COMPLETION_LINGER,
                move |done: Vec<store::Completion>| {
                    let shared = shared.clone();
                    async move {
                        let ttl = shared.config.task_ttl;
                        let result = with_retries("complete", || {
                            store::complete_many(&shared.pool, &done, ttl)
                        })
                        .await;
                        match result {
                            Ok(ids) => {
                                shared.notifier.changed(&ids);
                                done.iter().map(|d| Ok(ids.contains(&d.0))).collect()
                            }
                            Err(e) => done.iter().map(|_| Err(e.to_string())).collect(),
                        }
                    }
                },
            )
        };
        let runner = Arc::new(Self {
            shared,
            hooks: registry.hooks(),
            registry,
            worker,
            claimer,
            completer,
            inflight: Mutex::new(HashMap::new()),
            relay_wake,
            taken: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            alone: Arc::new(RwLock::new(())),
            recording: Arc::new(Semaphore::new(COMPLETIONS_PENDING)),
        });
        tokio::spawn(renew_leases(Arc::downgrade(&runner)));
        runner
    }

    pub fn worker(&self) -> &str {
        &self.worker
    }

    /// Number of attempts running in this process now.
    pub fn running(&self) -> usize {
        self.inflight.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Handles one transport message of a queue whose handler slots are `slots`, start to
    /// finish. Never fails: every outcome is recorded on the task row, so the transport can
    /// acknowledge the message.
    pub async fn handle(self: &Arc<Self>, envelope: Envelope, slots: &Arc<Slots>) {
        self.handle_reserved(envelope, slots, None).await
    }

    /// [`Self::handle`] for a message that already holds its reservation (the consumer's
    /// gate took one before it took the message); `None` reserves here.
    pub async fn handle_reserved(
        self: &Arc<Self>,
        envelope: Envelope,
        slots: &Arc<Slots>,
        reserved: Option<SlotHold>,
    ) {
        if self.stopping.load(Ordering::Relaxed) {
            // Shutting down: leave it; the relay pushes it again for another worker.
            return;
        }
        if self
            .taken
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(RELAY_POKE_EVERY)
        {
            self.relay_wake.notify_one();
        }
        // Held until the attempt is recorded: exclusive for a task that must run alone.
        let (gate, hold, claimed) = if envelope.isolate {
            // It runs alone, under a gate of its own, not in one of the shared slots.
            drop(reserved);
            // New attempts queue behind this wait, so it is short: a worker busy with a long
            // attempt (an export) leaves the task to another one. The message is consumed
            // but the row keeps `pushed_at`: the relay pushes it again after
            // QUEUE_REPUSH_AFTER_SECONDS, no hot loop.
            let exclusive = self.alone.clone().write_owned();
            let Ok(guard) = tokio::time::timeout(ALONE_WAIT, exclusive).await else {
                tracing::debug!(task.id = %envelope.task, "busy with a long attempt: task to run alone left for another worker");
                return;
            };
            let gate = Gate::Alone(guard);
            if self.stopping.load(Ordering::Relaxed) {
                return;
            }
            let worker = self.worker.clone();
            let lease = self.shared.config.task_lease;
            let claimed = with_retries("claim", || {
                store::claim_isolated(&self.shared.bookkeeping, envelope.task, &worker, lease)
            })
            .await
            .map_err(|e| e.to_string());
            if let Ok(Some(c)) = &claimed {
                self.shared.notifier.changed(&[c.id]);
                tracing::info!(task.id = %c.id, task.kind = %c.kind, "running a task alone: it lost its worker while sharing one");
            }
            (gate, None, claimed)
        } else {
            let gate = Gate::Shared(self.alone.clone().read_owned().await);
            // A free slot, or leave to claim ahead of one (see `crate::slots`).
            let hold = match reserved {
                Some(hold) => hold,
                None => slots.reserve().await,
            };
            if self.stopping.load(Ordering::Relaxed) {
                return;
            }
            let asked = std::time::Instant::now();
            let slot_waits = slots.waits_on_claim(&hold);
            match self.claimer.call((envelope.task, slot_waits)).await {
                Some(result) => {
                    slots.observe_claim(asked.elapsed());
                    (gate, Some(hold), result)
                }
                None => return,
            }
        };
        let claimed = match claimed {
            Ok(Some(c)) => c,
            Ok(None) => {
                // Duplicate message, cancelled, not due yet, already done, or marked to run
                // alone while this message is an ordinary one: nothing to do.
                tracing::debug!(task.id = %envelope.task, "message skipped: task not claimable");
                return;
            }
            Err(e) => {
                tracing::warn!(task.id = %envelope.task, error = %e, "claim failed; the relay will push the task again");
                return;
            }
        };
        // From here its lease is renewed and a shutdown gives it back, slot or not.
        let flags = self.register(&claimed);
        let slot = match hold {
            None => None,
            Some(hold) => match slots.slot(hold).await {
                Some(slot) => Some(slot),
                None => {
                    tracing::info!(task.id = %claimed.id, "claimed ahead but no slot came in time: given back for any worker");
                    self.give_back(claimed.id).await;
                    return;
                }
            },
        };
        if flags.lost.load(Ordering::Relaxed) {
            // Taken over (or its claim lost) while it waited for its slot: not ours to run.
            self.forget(claimed.id);
            self.push_again_if_waiting(claimed.id).await;
            return;
        }
        if flags.cancel.load(Ordering::Relaxed) || self.stopping.load(Ordering::Relaxed) {
            // Cancelled on request or shutting down before it started: the attempt is
            // given back (or ends `cancelled`) without running.
            self.give_back(claimed.id).await;
            return;
        }
        // Run and record on a task of its own: if apalis drops this future (its backend
        // died), the attempt still finishes and its outcome is still recorded.
        let this = self.clone();
        let slots = slots.clone();
        let _ = tokio::spawn(async move {
            let Some((completion, span)) = this.clone().execute(claimed, flags, &slots).await
            else {
                return;
            };
            match gate {
                // Nothing else starts here before a task run alone is recorded.
                Gate::Alone(_) => this.complete(completion, &span).await,
                // The slot is free once the handler returned: the next task is claimed
                // while this completion waits for its (batched, fsync'd) commit, so
                // neither waits for the other. Until it is recorded the task stays
                // `running` under its lease; a worker lost meanwhile means the task runs
                // again, as when it is lost during the handler.
                Gate::Shared(_) => {
                    drop(slot);
                    drop(gate);
                    this.complete_in_background(completion, span).await;
                }
            }
        })
        .await;
    }

    /// Registers a claimed attempt: its lease is renewed from now on, cancel requests reach
    /// it, and a shutdown gives it back.
    fn register(&self, claimed: &Claimed) -> Arc<Flags> {
        let flags = Arc::new(Flags::default());
        if let Ok(mut map) = self.inflight.lock() {
            map.insert(
                claimed.id,
                Inflight {
                    kind: claimed.kind.clone(),
                    attempt: claimed.attempt,
                    flags: flags.clone(),
                    abort: None,
                },
            );
        }
        flags
    }

    /// Unregisters an attempt; `None` if it was not registered (any more).
    fn forget(&self, id: Uuid) -> Option<Inflight> {
        self.inflight
            .lock()
            .ok()
            .and_then(|mut map| map.remove(&id))
    }

    /// Gives a registered attempt back without counting it ([`store::release`]), unless a
    /// shutdown already did.
    async fn give_back(&self, id: Uuid) {
        if let Some(inflight) = self.forget(id) {
            self.release(id, inflight).await;
            self.shared.notifier.changed(&[id]);
        }
    }

    /// Records a completion on a task of its own, holding one of [`COMPLETIONS_PENDING`]
    /// permits until it is recorded (waits for one when all are taken, so a slow Postgres
    /// slows the intake instead of piling up results in memory).
    async fn complete_in_background(
        self: &Arc<Self>,
        completion: store::Completion,
        span: tracing::Span,
    ) {
        let Ok(permit) = self.recording.clone().acquire_owned().await else {
            return;
        };
        let this = self.clone();
        tokio::spawn(async move {
            this.complete(completion, &span).await;
            drop(permit);
        });
    }

    /// Waits (up to `timeout`) until every completion handed to the background is recorded;
    /// the worker calls it before closing its pools. Returns whether all were.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let all = self.recording.acquire_many(COMPLETIONS_PENDING as u32);
        tokio::time::timeout(timeout, all)
            .await
            .is_ok_and(|p| p.is_ok())
    }

    /// Runs one attempt. A plain completion (a result, with or without an effect) is
    /// returned to the caller to record; every other outcome is recorded here.
    async fn execute(
        self: Arc<Self>,
        claimed: Claimed,
        flags: Arc<Flags>,
        slots: &Slots,
    ) -> Option<(store::Completion, tracing::Span)> {
        let Some(spec) = self.registry.get(&claimed.kind).cloned() else {
            self.forget(claimed.id);
            self.leave_for_another_worker(&claimed).await;
            return None;
        };
        if let Some(problem) = &claimed.params_error {
            self.forget(claimed.id);
            // Postgres accepted the value but it cannot be read back (e.g. a number beyond
            // f64): no attempt can ever run, so fail now instead of looping.
            let err = JobError::permanent(
                "undecodable_params",
                format!("the task's stored params cannot be decoded: {problem}"),
            );
            self.observe(
                &spec,
                TaskStatus::Failed.as_str(),
                std::time::Instant::now(),
            );
            self.record_failure(&claimed, Some(&spec), err).await;
            return None;
        }

        let started = std::time::Instant::now();
        let id = claimed.id;
        let attempt = claimed.attempt;
        let ctx = TaskContext::new(claimed.clone(), self.shared.clone(), flags.clone());
        let timeout = spec.timeout;
        let handler = spec.handler.clone();
        let span = tracing::info_span!("task", task.id = %id, task.kind = %claimed.kind, attempt);
        // Its abort handle is registered under the registry's lock, so a shutdown either
        // finds it or has already given the attempt back (then it never starts: an aborted
        // `Abortable` does not poll what it wraps).
        let (abort, registration) = AbortHandle::new_pair();
        {
            let Ok(mut map) = self.inflight.lock() else {
                return None;
            };
            map.get_mut(&id)?.abort = Some(abort);
        }
        tracing::debug!(parent: &span, "attempt started");
        // Run here, on the attempt's own task (spawned by `handle_reserved`), not on one more:
        // a spawn and a wake-up less per task in the chain from one handler to the next. A
        // panic is caught all the same, including one while the handler builds its future.
        let run =
            AssertUnwindSafe(async move { tokio::time::timeout(timeout, handler(ctx)).await })
                .catch_unwind();
        let outcome = Abortable::new(run, registration).await;
        slots.observe(started.elapsed());
        self.forget(id);
        let err = match outcome {
            Ok(Ok(Ok(Ok(Done::Result(result))))) => {
                self.observe(&spec, TaskStatus::Completed.as_str(), started);
                return Some(((id, attempt, result, None), span));
            }
            Ok(Ok(Ok(Ok(Done::ResultWith(result, effect))))) => {
                self.observe(&spec, TaskStatus::Completed.as_str(), started);
                return Some(((id, attempt, result, Some(effect)), span));
            }
            Ok(Ok(Ok(Ok(Done::Committed(_))))) => {
                self.observe(&spec, TaskStatus::Completed.as_str(), started);
                self.shared.notifier.changed(&[id]);
                tracing::debug!(parent: &span, "completed");
                return None;
            }
            Ok(Ok(Ok(Err(e)))) => e,
            Ok(Ok(Err(_elapsed))) => JobError::retryable(
                "timeout",
                format!(
                    "attempt exceeded the kind's timeout of {}s",
                    timeout.as_secs_f64()
                ),
            ),
            Ok(Err(payload)) => {
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic with a non-text payload".into());
                JobError::retryable("panic", format!("handler panicked: {message}"))
            }
            // Aborted by shutdown: `release_all` gives the attempt back.
            Err(Aborted) => return None,
        };
        let outcome = match &err {
            JobError::Waiting { .. } => "waiting",
            JobError::Cancelled => TaskStatus::Cancelled.as_str(),
            JobError::Superseded => "superseded",
            JobError::Permanent { .. } => TaskStatus::Failed.as_str(),
            _ if claimed.attempt >= claimed.max_attempts => TaskStatus::Dead.as_str(),
            _ => TaskStatus::Retrying.as_str(),
        };
        self.observe(&spec, outcome, started);
        self.record_failure(&claimed, Some(&spec), err)
            .instrument(span)
            .await;
        None
    }

    /// Records a completion through the batched completer.
    async fn complete(&self, completion: store::Completion, span: &tracing::Span) {
        let id = completion.0;
        match self.completer.call(completion).await {
            Some(Ok(true)) => tracing::debug!(parent: span, "completed"),
            Some(Ok(false)) => {
                tracing::info!(parent: span, "result discarded: the attempt no longer owned the task");
                self.push_again_if_waiting(id).await;
            }
            Some(Err(e)) => {
                tracing::error!(parent: span, error = %e, "completion not recorded; the task will run again after its lease")
            }
            None => {}
        }
    }

    /// An attempt found it no longer owned its task. If the task is waiting again, its claim
    /// was lost (a Postgres crash took it: claims do not wait for the WAL flush) and its
    /// message is gone: let the relay push it at its next pass instead of after
    /// `QUEUE_REPUSH_AFTER_SECONDS`. A task another worker took over is not waiting, and one
    /// that still has a message is at worst pushed twice and claimed once. Best effort.
    async fn push_again_if_waiting(&self, id: Uuid) {
        if let Err(e) = store::mark_unpushed(&self.shared.pool, &[id]).await {
            tracing::debug!(task.id = %id, error = %e, "could not mark the task for the relay");
        }
    }

    /// One finished attempt in `taquilla_task_duration_seconds` (see `crate::metrics`) and
    /// in its queue's outcome counts (the periodic `queue_metrics` log).
    fn observe(&self, spec: &KindSpec<S>, outcome: &str, started: std::time::Instant) {
        self.shared.metrics.observe(
            "taquilla_task_duration_seconds",
            &[("kind", spec.name), ("status", outcome)],
            started.elapsed().as_secs_f64(),
        );
        self.shared.metrics.count_outcome(spec.queue, outcome);
        // Waiting, cancelled and superseded attempts are neither throughput nor failures.
        let minute = match TaskStatus::parse(outcome) {
            Some(TaskStatus::Completed) => Some(crate::metrics::Outcome::Completed),
            Some(TaskStatus::Failed | TaskStatus::Dead | TaskStatus::Retrying) => {
                Some(crate::metrics::Outcome::Failed)
            }
            _ => None,
        };
        if let Some(o) = minute {
            self.shared.metrics.count_minute(spec.queue, o);
        }
    }

    /// A kind this worker does not know (a newer version enqueued it during a rolling
    /// deploy): give the attempt back and let the task wait, so a worker that knows the kind
    /// takes it later. Not a failure: it never uses up the task's attempts.
    async fn leave_for_another_worker(&self, c: &Claimed) {
        let jitter = rand::random_range(0..=UNKNOWN_KIND_RETRY.as_millis() as u64);
        let after = UNKNOWN_KIND_RETRY + Duration::from_millis(jitter);
        let run_at = Utc::now() + chrono::Duration::from_std(after).unwrap_or_default();
        let stage = format!("waiting for a worker that knows kind {:?}", c.kind);
        match self.defer(c, run_at, &stage).await {
            Ok(_) => tracing::warn!(task.id = %c.id, task.kind = %c.kind, %run_at,
                "no handler for this kind in this worker; left for a worker that has one"),
            Err(e) => {
                tracing::warn!(task.id = %c.id, error = %e, "could not give the task back; it runs again after its lease")
            }
        }
        self.shared.notifier.changed(&[c.id]);
    }

    /// Gives the attempt back until `run_at` ([`store::defer`]); a task whose cancellation
    /// was requested meanwhile ends `cancelled` instead, with its kind's hook.
    async fn defer(
        &self,
        c: &Claimed,
        run_at: chrono::DateTime<Utc>,
        stage: &str,
    ) -> Result<Option<TaskStatus>, sqlx::Error> {
        with_retries("defer", || async move {
            let mut tx = self.shared.pool.begin().await?;
            let status = store::defer(&mut *tx, c.id, c.attempt, run_at, stage).await?;
            let error = serde_json::json!({
                "code": "cancelled", "message": "cancelled on request while waiting"
            });
            self.hooks
                .after_transition(&mut tx, &c.kind, c.id, status, Some(error))
                .await?;
            tx.commit().await?;
            Ok(status)
        })
        .await
    }

    async fn record_failure(&self, c: &Claimed, spec: Option<&KindSpec<S>>, err: JobError) {
        let (code, message, disposition) = match err {
            JobError::Waiting { reason, after } => {
                let run_at = Utc::now() + chrono::Duration::from_std(after).unwrap_or_default();
                match self.defer(c, run_at, &reason).await {
                    Ok(Some(TaskStatus::Cancelled)) => {
                        tracing::info!("cancelled on request while waiting")
                    }
                    Ok(_) => tracing::debug!(%reason, %run_at, "task waits"),
                    Err(e) => {
                        tracing::warn!(error = %e, "wait not recorded; the task runs again after its lease")
                    }
                }
                self.shared.notifier.changed(&[c.id]);
                return;
            }
            JobError::Superseded => {
                tracing::info!("attempt superseded by another worker; nothing recorded");
                self.push_again_if_waiting(c.id).await;
                return;
            }
            JobError::Cancelled => (
                "cancelled".to_string(),
                "cancelled on request while running".to_string(),
                Disposition::Cancelled,
            ),
            JobError::Permanent { code, message } => (code, message, Disposition::Fail),
            JobError::Retryable { code, message } => {
                (code, message, retry_or_dead(c, spec, Duration::ZERO))
            }
            JobError::RetryAfter {
                code,
                message,
                after,
            } => (code, message, retry_or_dead(c, spec, after)),
        };
        let error = AttemptError {
            attempt: c.attempt,
            code,
            message,
            at: Utc::now(),
            retry_at: match disposition {
                Disposition::Retry { run_at } => Some(run_at),
                _ => None,
            },
        };
        let ttl = self.shared.config.task_ttl;
        let error_ref = &error;
        let recorded = with_retries("record failure", || async move {
            let mut tx = self.shared.pool.begin().await?;
            let status =
                store::record_failure(&mut *tx, c.id, c.attempt, error_ref, disposition, ttl)
                    .await?;
            let as_json = serde_json::to_value(error_ref).ok();
            self.hooks
                .after_transition(&mut tx, &c.kind, c.id, status, as_json)
                .await?;
            tx.commit().await?;
            Ok(status)
        })
        .await;
        match (&recorded, disposition) {
            (Err(e), _) => {
                tracing::error!(error = %e, "failure not recorded; the task will run again after its lease")
            }
            (Ok(None), _) => {
                tracing::info!("failure discarded: the attempt no longer owned the task");
                self.push_again_if_waiting(c.id).await;
            }
            (Ok(Some(TaskStatus::Cancelled)), _) => tracing::info!(
                error.code = %error.code, "cancelled on request; the attempt's outcome is kept in the history"
            ),
            (Ok(Some(_)), Disposition::Retry { run_at }) => tracing::info!(
                error.code = %error.code, error.message = %error.message, %run_at, "attempt failed, will retry"
            ),
            (Ok(Some(_)), d) => tracing::warn!(
                error.code = %error.code, error.message = %error.message, status = %d.status(), "task failed for good"
            ),
        }
        self.shared.notifier.changed(&[c.id]);
    }

    /// For shutdown: stop taking messages, abort attempts still running and give them back
    /// without counting them, so another worker starts them at once.
    pub async fn release_all(&self) -> usize {
        self.stopping.store(true, Ordering::Relaxed);
        let taken: Vec<(Uuid, Inflight)> = match self.inflight.lock() {
            Ok(mut map) => map.drain().collect(),
            Err(_) => return 0,
        };
        let mut released = 0;
        for (id, inflight) in taken {
            if self.release(id, inflight).await {
                released += 1;
            }
        }
        self.shared.notifier.changed(&[]);
        released
    }

    /// Gives one attempt back without counting it (aborting its handler if it runs), with
    /// its kind's hook; true if it is waiting again for any worker.
    async fn release(&self, id: Uuid, mut inflight: Inflight) -> bool {
        if let Some(abort) = inflight.abort.take() {
            abort.abort();
        }
        let released = async {
            let mut tx = self.shared.pool.begin().await?;
            let status = store::release(&mut *tx, id, inflight.attempt).await?;
            let error = serde_json::json!({ "code": "cancelled", "message": "cancelled on request before the attempt finished" });
            self.hooks
                .after_transition(&mut tx, &inflight.kind, id, status, Some(error))
                .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(status)
        };
        match released.await {
            Ok(Some(TaskStatus::Cancelled)) => {
                tracing::info!(task.id = %id, "cancelled on request; not handed to another worker");
                false
            }
            Ok(Some(_)) => true,
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(task.id = %id, error = %e, "could not release task; it will be retried after its lease");
                false
            }
        }
    }

    pub fn stop_taking(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }
}

/// A retryable failure: another attempt after the kind's backoff (at least `after`, a
/// provider's Retry-After: retrying earlier only earns another 429), or `dead` when no
/// attempts are left.
fn retry_or_dead<S>(c: &Claimed, spec: Option<&KindSpec<S>>, after: Duration) -> Disposition {
    match spec {
        Some(spec) if c.attempt < c.max_attempts => {
            let delay = spec.backoff.delay(c.attempt).max(after);
            Disposition::Retry {
                run_at: Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default(),
            }
        }
        _ => Disposition::Dead,
    }
}

/// Renews the leases of running attempts every third of the lease, and passes cancel
/// requests (and lost ownership) to their handlers.
async fn renew_leases<S: Send + Sync + 'static>(runner: Weak<Runner<S>>) {
    let period = match runner.upgrade() {
        Some(r) => r.shared.config.task_lease / 3,
        None => return,
    };
    loop {
        tokio::time::sleep(period.max(Duration::from_millis(100))).await;
        let Some(runner) = runner.upgrade() else {
            return;
        };
        let owned: Vec<(Uuid, i32, Arc<Flags>)> = match runner.inflight.lock() {
            Ok(map) => map
                .iter()
                .map(|(id, f)| (*id, f.attempt, f.flags.clone()))
                .collect(),
            Err(_) => return,
        };
        if owned.is_empty() {
            continue;
        }
        let pairs: Vec<(Uuid, i32)> = owned.iter().map(|o| (o.0, o.1)).collect();
        match store::renew_leases(
            &runner.shared.bookkeeping,
            &pairs,
            runner.shared.config.task_lease,
        )
        .await
        {
            Ok(rows) => {
                let rows: HashMap<Uuid, bool> = rows.into_iter().collect();
                for (id, _, flags) in &owned {
                    match rows.get(id) {
                        Some(true) => flags.cancel.store(true, Ordering::Relaxed),
                        Some(false) => {}
                        None => flags.lost.store(true, Ordering::Relaxed),
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "lease renewal failed"),
        }
    }
}
