//! All SQL on `tasks`. Every state change is one conditional statement whose `WHERE`
//! clause is the state machine of DESIGN §3: a transition that no longer applies (the task
//! was cancelled, another worker took it over, a duplicate message) changes zero rows.
//!
//! ```text
//!                 insert                    claim (attempt + 1, lease)
//!   (api, cron) ─────────▶ pending ────────────────────────────────┐
//!                            │  ▲                                  ▼
//!          cancel (not       │  │ release / defer (attempt    ┌─────────┐  complete
//!          started yet)      │  │ given back), lease lost     │ running │ ───────────▶ completed
//!                            ▼  │ while sharing a worker      └─────────┘
//!                        cancelled ◀── cancel requested ──────────┤ │ │
//!                            ▲         (at the next check,        │ │ │ retryable error,
//!                            │          or when given back)       │ │ │ attempts left
//!                            │                                    │ │ ▼
//!                            └──────────── cancel ──────────── retrying ── claim ──▶ running
//!                                                                 │ │
//!                               permanent error ◀─────────────────┘ └──▶ retryable error (or
//!                                  = failed                              lost alone) on the
//!                                                                        last attempt = dead
//!
//!   failed, dead ── redrive (operator) ──▶ pending (a fresh budget, history kept)
//!   completed, failed, cancelled, dead ── past `expires_at` ──▶ deleted ([`delete_expired`])
//! ```
//!
//! Who calls what: the api inserts, cancels and re-drives; the runner claims, completes,
//! records failures, releases and defers; the relay takes due and expired tasks. Whenever a
//! task ends `failed`, `dead` or `cancelled` (by any of them) the kind's
//! [`crate::Kind::on_terminal_failure`] runs in the same transaction, and on a re-drive its
//! [`crate::Kind::on_redrive`] (callers do that: [`crate::actions`], the runner, the relay).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgExecutor, PgPool, Postgres, Row, Transaction};
use uuid::Uuid;

use crate::retry::BackoffTable;
use crate::task::{AttemptError, KindInfo, TaskRecord, TaskStatus};

/// How many attempt errors a task keeps (the newest ones).
pub const ERROR_HISTORY: i32 = 10;

pub(crate) const RECORD_COLUMNS: &str =
    "id, kind, queue, status, params, result, error, errors, attempts, \
    max_attempts, progress, stage, requester, idempotency_key, run_at, created_at, updated_at, \
    started_at, finished_at, expires_at, cancel_requested";

fn interval(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// A task to create.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub id: Uuid,
    pub kind: String,
    pub queue: String,
    pub params: Value,
    pub max_attempts: i32,
    pub requester: String,
    pub idempotency_key: Option<String>,
    pub request_id: Option<String>,
    /// Earliest start; `None` = now.
    pub run_at: Option<DateTime<Utc>>,
    pub ttl: Duration,
    /// Whether the caller is about to push the transport message itself (the api's fast
    /// path): the row is then marked pushed so the relay does not push it a second time.
    pub will_push: bool,
}

#[derive(Debug)]
pub enum Inserted {
    Created(TaskRecord),
    /// Same requester, same idempotency key, same params: the original task.
    Replayed(TaskRecord),
    /// Same requester and key, different params.
    Conflict(TaskRecord),
}

pub async fn insert(pool: &PgPool, new: &NewTask) -> Result<Inserted, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    insert_conn(&mut conn, new).await
}

/// [`insert`] on a given connection, e.g. inside a transaction that also writes the rows
/// the task will work on.
pub async fn insert_conn(
    conn: &mut sqlx::PgConnection,
    new: &NewTask,
) -> Result<Inserted, sqlx::Error> {
    // One task in, one outcome out.
    let mut outcomes = insert_many(conn, std::slice::from_ref(new)).await?;
    outcomes.pop().unwrap_or(Err(sqlx::Error::RowNotFound))
}

/// The task that holds `new`'s idempotency key: only an idempotency conflict leaves an insert
/// without a row (ids are fresh v7 uuids). The same key with the same kind and params is a
/// retried request; with anything else, a reused key.
async fn existing<'e>(db: impl PgExecutor<'e>, new: &NewTask) -> Result<Inserted, sqlx::Error> {
    let sql =
        format!("SELECT {RECORD_COLUMNS} FROM tasks WHERE requester = $1 AND idempotency_key = $2");
    let rec = sqlx::query_as::<_, TaskRecord>(&sql)
        .bind(&new.requester)
        .bind(&new.idempotency_key)
        .fetch_one(db)
        .await?;
    if rec.kind == new.kind && rec.params == new.params {
        Ok(Inserted::Replayed(rec))
    } else {
        Ok(Inserted::Conflict(rec))
    }
}

/// [`insert`] for many tasks in one statement (in one commit when `conn` is not inside a
/// transaction: the api's concurrent requests, grouped by [`crate::enqueue::Enqueuer`]); one
/// outcome per task, in `news`' order. Tasks with the same requester and key in one call give
/// one `Created` and, for the others, what [`insert`] gives for a retried request or a reused
/// key.
///
/// Rows go in ordered by (requester, key): two such statements running at once then wait
/// on each other's keys in the same order and never deadlock. The outer error is the
/// statement's: nothing was inserted (the caller inserts one by one to tell whose row it
/// was). An inner error is that task's alone: its key's holder could not be read back after
/// the others were committed.
pub async fn insert_many(
    conn: &mut sqlx::PgConnection,
    news: &[NewTask],
) -> Result<Vec<Result<Inserted, sqlx::Error>>, sqlx::Error> {
    let mut order: Vec<usize> = (0..news.len()).collect();
    order.sort_by(|&a, &b| {
        (&news[a].requester, &news[a].idempotency_key)
            .cmp(&(&news[b].requester, &news[b].idempotency_key))
    });
    let ids: Vec<Uuid> = order.iter().map(|&i| news[i].id).collect();
    let kinds: Vec<&str> = order.iter().map(|&i| news[i].kind.as_str()).collect();
    let queues: Vec<&str> = order.iter().map(|&i| news[i].queue.as_str()).collect();
    let params: Vec<Value> = order.iter().map(|&i| news[i].params.clone()).collect();
    let max_attempts: Vec<i32> = order.iter().map(|&i| news[i].max_attempts).collect();
    let requesters: Vec<&str> = order.iter().map(|&i| news[i].requester.as_str()).collect();
    let keys: Vec<Option<&str>> = order
        .iter()
        .map(|&i| news[i].idempotency_key.as_deref())
        .collect();
    let request_ids: Vec<Option<&str>> = order
        .iter()
        .map(|&i| news[i].request_id.as_deref())
        .collect();
    let run_ats: Vec<Option<DateTime<Utc>>> = order.iter().map(|&i| news[i].run_at).collect();
    let ttls: Vec<f64> = order.iter().map(|&i| interval(news[i].ttl)).collect();
    let pushes: Vec<bool> = order.iter().map(|&i| news[i].will_push).collect();
    let sql = format!(
        "INSERT INTO tasks (id, kind, queue, status, params, max_attempts, requester, idempotency_key, \
             request_id, run_at, expires_at, pushed_at) \
         SELECT u.id, u.kind, u.queue, 'pending', u.params, u.max_attempts, u.requester, u.key, \
             u.request_id, COALESCE(u.run_at, now()), now() + make_interval(secs => u.ttl), \
             CASE WHEN u.push THEN now() END \
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::int[], $6::text[], \
             $7::text[], $8::text[], $9::timestamptz[], $10::float8[], $11::bool[]) WITH ORDINALITY \
             AS u(id, kind, queue, params, max_attempts, requester, key, request_id, run_at, ttl, push, n) \
         ORDER BY u.n \
         ON CONFLICT (requester, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING \
         RETURNING {RECORD_COLUMNS}"
    );
    let created: Vec<TaskRecord> = sqlx::query_as(&sql)
        .bind(&ids)
        .bind(&kinds)
        .bind(&queues)
        .bind(&params)
        .bind(&max_attempts)
        .bind(&requesters)
        .bind(&keys)
        .bind(&request_ids)
        .bind(&run_ats)
        .bind(&ttls)
        .bind(&pushes)
        .fetch_all(&mut *conn)
        .await?;
    let mut created: std::collections::HashMap<Uuid, TaskRecord> =
        created.into_iter().map(|r| (r.id, r)).collect();
    let mut out = Vec::with_capacity(news.len());
    for new in news {
        out.push(match created.remove(&new.id) {
            Some(rec) => Ok(Inserted::Created(rec)),
            None => existing(&mut *conn, new).await,
        });
    }
    Ok(out)
}

/// The push announced by `will_push` did not happen: let the relay push it.
pub async fn mark_unpushed(pool: &PgPool, ids: &[Uuid]) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE tasks SET pushed_at = NULL WHERE id = ANY($1) AND status IN ('pending', 'retrying')")
        .bind(ids)
        .execute(pool)
        .await?;
    Ok(())
}

/// A task by id, only if `requester` owns it (`None` = any requester, for operators).
pub async fn get(
    pool: &PgPool,
    id: Uuid,
    requester: Option<&str>,
) -> Result<Option<TaskRecord>, sqlx::Error> {
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM tasks WHERE id = $1 AND ($2::text IS NULL OR requester = $2)"
    );
    sqlx::query_as::<_, TaskRecord>(&sql)
        .bind(id)
        .bind(requester)
        .fetch_optional(pool)
        .await
}

/// Cancels a task for its requester (`None` = an operator): one statement decides between
/// "cancel now" (it had not started) and "ask the running handler to stop", so a task that
/// starts meanwhile is never left pending-but-cancelled. Returns the task as it is now,
/// `None` when nothing was cancellable (unknown, not the requester's, or finished). The
/// caller runs the kind's terminal hook in the same transaction ([`crate::actions::cancel`]).
pub async fn cancel(
    conn: &mut sqlx::PgConnection,
    id: Uuid,
    requester: Option<&str>,
) -> Result<Option<TaskRecord>, sqlx::Error> {
    let sql = format!(
        "UPDATE tasks SET \
             status = CASE WHEN status IN ('pending', 'retrying') THEN 'cancelled' ELSE status END, \
             finished_at = CASE WHEN status IN ('pending', 'retrying') THEN now() ELSE finished_at END, \
             cancel_requested = true, updated_at = now() \
         WHERE id = $1 AND ($2::text IS NULL OR requester = $2) \
             AND status IN ('pending', 'retrying', 'running') \
         RETURNING {RECORD_COLUMNS}"
    );
    sqlx::query_as::<_, TaskRecord>(&sql)
        .bind(id)
        .bind(requester)
        .fetch_optional(&mut *conn)
        .await
}

/// Cancels tasks on behalf of another task (a cancelled parent's children): those not
/// started end at once, running ones are asked to stop. Returns the ids of those that ended
/// here, for the caller to keep its own rows in step (it runs inside a kind's hook).
pub async fn cancel_children(
    conn: &mut sqlx::PgConnection,
    ids: &[Uuid],
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "WITH hit AS (SELECT id, status IN ('pending', 'retrying') AS ends FROM tasks \
             WHERE id = ANY($1) AND status IN ('pending', 'retrying', 'running') FOR UPDATE) \
         UPDATE tasks t SET \
             status = CASE WHEN hit.ends THEN 'cancelled' ELSE t.status END, \
             finished_at = CASE WHEN hit.ends THEN now() ELSE t.finished_at END, \
             cancel_requested = true, updated_at = now() \
         FROM hit WHERE t.id = hit.id RETURNING CASE WHEN hit.ends THEN t.id END",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await
    .map(|ended: Vec<Option<Uuid>>| ended.into_iter().flatten().collect())
}

/// Forgiven lease losses after which a task runs alone (see [`take_expired`]).
pub const ISOLATE_AFTER_LOSSES: i32 = 2;

/// A task this worker now owns for one attempt.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: Uuid,
    pub kind: String,
    /// `Null` when the stored params do not decode (see `params_error`).
    pub params: Value,
    /// Why the stored params cannot be read back (e.g. a number beyond `f64` that Postgres
    /// accepted into `jsonb`): the runner fails the task at once instead of looping.
    pub params_error: Option<String>,
    /// This attempt's number; also the fencing token of every later write.
    pub attempt: i32,
    /// The attempt budget in the same count as `attempt`: `max_attempts` plus the forgiven
    /// lease losses, so `attempt >= max_attempts` still means "the last attempt".
    pub max_attempts: i32,
    pub requester: String,
    /// The task must run alone on its worker (it lost leases while sharing one).
    pub isolate: bool,
}

/// Claims every claimable task among `ids` for `worker`: `pending`/`retrying` and due, not
/// cancelled, attempts left, and not marked to run alone (those go through
/// [`claim_isolated`]). Counting the attempt here means a task that crashes its worker
/// still dies after its budget (see [`take_expired`] for which losses count). The claim
/// consumes the message (`pushed_at` cleared), so the relay acts as soon as the lease expires.
pub async fn claim(
    pool: &PgPool,
    ids: &[Uuid],
    worker: &str,
    lease: Duration,
) -> Result<Vec<Claimed>, sqlx::Error> {
    claim_where(pool, ids, worker, lease, false).await
}

/// Claims one task for a worker that runs nothing else meanwhile (isolated or not).
pub async fn claim_isolated(
    pool: &PgPool,
    id: Uuid,
    worker: &str,
    lease: Duration,
) -> Result<Option<Claimed>, sqlx::Error> {
    Ok(claim_where(pool, &[id], worker, lease, true)
        .await?
        .into_iter()
        .next())
}

async fn claim_where(
    pool: &PgPool,
    ids: &[Uuid],
    worker: &str,
    lease: Duration,
    alone: bool,
) -> Result<Vec<Claimed>, sqlx::Error> {
    // Params come back as text and are decoded here, row by row: one row that does not
    // decode must fail that task, not the claim of the whole batch.
    let rows = sqlx::query(
        "UPDATE tasks SET status = 'running', attempts = attempts + 1, worker = $2, \
             lease_expires_at = now() + make_interval(secs => $3), pushed_at = NULL, \
             started_at = COALESCE(started_at, now()), updated_at = now() \
         WHERE id = ANY($1) AND NOT cancel_requested AND attempts - lease_losses < max_attempts \
             AND status IN ('pending', 'retrying') AND run_at <= now() AND (NOT isolate OR $4) \
         RETURNING id, kind, params::text AS params_text, attempts, \
             max_attempts + lease_losses AS budget, requester, isolate",
    )
    .bind(ids)
    .bind(worker)
    .bind(interval(lease))
    .bind(alone)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            let text: String = r.try_get("params_text")?;
            let (params, params_error) = match serde_json::from_str::<Value>(&text) {
                Ok(v) => (v, None),
                Err(e) => (Value::Null, Some(e.to_string())),
            };
            Ok(Claimed {
                id: r.try_get("id")?,
                kind: r.try_get("kind")?,
                params,
                params_error,
                attempt: r.try_get("attempts")?,
                max_attempts: r.try_get("budget")?,
                requester: r.try_get("requester")?,
                isolate: r.try_get("isolate")?,
            })
        })
        .collect()
}

/// One completion for [`complete_many`]: task, attempt, result and an optional effect.
pub type Completion = (Uuid, i32, Value, Option<crate::outcome::Effect>);

/// Completes many tasks in one statement, each fenced by its attempt; returns the ids that
/// were completed. Effects (grouped by statement) run in the same statement, as
/// data-modifying CTEs over the completed ids only: all of it commits together or not at all.
pub async fn complete_many<'e>(
    db: impl PgExecutor<'e>,
    done: &[Completion],
    ttl: Duration,
) -> Result<Vec<Uuid>, sqlx::Error> {
    let ids: Vec<Uuid> = done.iter().map(|d| d.0).collect();
    let attempts: Vec<i32> = done.iter().map(|d| d.1).collect();
    let results: Vec<Value> = done.iter().map(|d| d.2.clone()).collect();
    // Distinct effect statements of this batch (usually none or one), each with its rows.
    let mut effects: Vec<(&'static str, Vec<Uuid>, Vec<String>)> = Vec::new();
    for (id, _, _, effect) in done {
        if let Some(e) = effect {
            match effects.iter_mut().find(|g| g.0 == e.sql) {
                Some(g) => {
                    g.1.push(*id);
                    g.2.push(e.arg.clone());
                }
                None => effects.push((e.sql, vec![*id], vec![e.arg.clone()])),
            }
        }
    }
    let mut sql = String::from(
        "WITH done AS ( \
             UPDATE tasks t SET status = 'completed', result = v.result, progress = 100, \
                 finished_at = now(), updated_at = now(), lease_expires_at = NULL, \
                 expires_at = now() + make_interval(secs => $4) \
             FROM (SELECT * FROM unnest($1::uuid[], $2::int[], $3::jsonb[]) AS u(id, attempts, result)) v \
             WHERE t.id = v.id AND t.attempts = v.attempts AND t.status = 'running' \
             RETURNING t.id)",
    );
    for (i, (effect_sql, _, _)) in effects.iter().enumerate() {
        let (ids_param, args_param) = (5 + 2 * i, 6 + 2 * i);
        let input = format!(
            "(SELECT x.id, x.arg FROM unnest(${ids_param}::uuid[], ${args_param}::text[]) AS x(id, arg) \
              JOIN done ON done.id = x.id)"
        );
        sql.push_str(&format!(
            ", effect{i} AS ({})",
            effect_sql.replace("{done}", &input)
        ));
    }
    sql.push_str(" SELECT id FROM done");
    let mut q = sqlx::query(&sql)
        .bind(&ids)
        .bind(&attempts)
        .bind(&results)
        .bind(interval(ttl));
    for (_, ids, args) in &effects {
        q = q.bind(ids).bind(args);
    }
    let rows = q.fetch_all(db).await?;
    rows.into_iter().map(|r| r.try_get("id")).collect()
}

/// Locks, inside the caller's transaction, those of `(id, attempt)` that the attempt still
/// owns (`running` with that attempt), in id order so two transactions locking overlapping
/// sets never wait on each other in a circle; returns their ids. What is locked here cannot
/// be taken over or cancelled before the transaction ends, so effects written next are
/// completed with [`complete_many`] in the same transaction or not at all.
pub async fn lock_owned(
    conn: &mut sqlx::PgConnection,
    owned: &[(Uuid, i32)],
) -> Result<Vec<Uuid>, sqlx::Error> {
    let ids: Vec<Uuid> = owned.iter().map(|o| o.0).collect();
    let attempts: Vec<i32> = owned.iter().map(|o| o.1).collect();
    sqlx::query_scalar(
        "SELECT t.id FROM tasks t \
         JOIN unnest($1::uuid[], $2::int[]) AS v(id, attempts) ON t.id = v.id AND t.attempts = v.attempts \
         WHERE t.status = 'running' ORDER BY t.id FOR UPDATE OF t",
    )
    .bind(&ids)
    .bind(&attempts)
    .fetch_all(&mut *conn)
    .await
}

/// Completes one task inside the caller's transaction, so its side effects and its
/// completion commit together. `false` = this attempt no longer owns the task (its lease
/// expired and another worker took over, or it was released): roll back.
pub async fn complete_in_tx(
    tx: &mut Transaction<'_, Postgres>,
    id: Uuid,
    attempt: i32,
    result: &Value,
    ttl: Duration,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE tasks SET status = 'completed', result = $3, progress = 100, finished_at = now(), \
             updated_at = now(), lease_expires_at = NULL, expires_at = now() + make_interval(secs => $4) \
         WHERE id = $1 AND attempts = $2 AND status = 'running'",
    )
    .bind(id)
    .bind(attempt)
    .bind(result)
    .bind(interval(ttl))
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// What becomes of a task after an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Disposition {
    /// Try again at `run_at` (status `retrying`).
    Retry { run_at: DateTime<Utc> },
    /// Permanent error: `failed`, not retried.
    Fail,
    /// Attempts exhausted: `dead` (the dead-letter queue).
    Dead,
    /// The handler stopped because cancellation was requested.
    Cancelled,
}

impl Disposition {
    pub fn status(self) -> TaskStatus {
        match self {
            Self::Retry { .. } => TaskStatus::Retrying,
            Self::Fail => TaskStatus::Failed,
            Self::Dead => TaskStatus::Dead,
            Self::Cancelled => TaskStatus::Cancelled,
        }
    }
}

/// Records a failed (or cancelled) attempt; returns the status it left the task in, or
/// `None` when the attempt no longer owned the task. A task whose cancellation was
/// requested ends `cancelled` whatever the attempt's outcome (nothing would ever claim it
/// again), with the attempt's own error kept in the history.
pub async fn record_failure<'e>(
    db: impl PgExecutor<'e>,
    id: Uuid,
    attempt: i32,
    error: &AttemptError,
    disposition: Disposition,
    ttl: Duration,
) -> Result<Option<TaskStatus>, sqlx::Error> {
    let status = disposition.status().as_str();
    let run_at = match disposition {
        Disposition::Retry { run_at } => Some(run_at),
        _ => None,
    };
    let error = serde_json::to_value(error).unwrap_or(Value::Null);
    let terminal = !matches!(disposition, Disposition::Retry { .. });
    let status: Option<TaskStatus> = sqlx::query_scalar(
        "UPDATE tasks SET status = CASE WHEN cancel_requested THEN 'cancelled' ELSE $3 END, \
             error = CASE WHEN cancel_requested AND $3 <> 'cancelled' THEN jsonb_build_object( \
                     'code', 'cancelled', 'attempt', $4->'attempt', 'at', $4->'at', \
                     'message', 'cancelled on request; the last attempt ended with ' || ($4->>'code')) \
                 ELSE $4 END, \
             errors = (CASE WHEN jsonb_array_length(errors) >= $5 THEN errors - 0 ELSE errors END) \
                      || jsonb_build_array($4), \
             run_at = CASE WHEN cancel_requested THEN run_at ELSE COALESCE($6, run_at) END, \
             pushed_at = NULL, lease_expires_at = NULL, updated_at = now(), \
             finished_at = CASE WHEN $7 OR cancel_requested THEN now() ELSE NULL END, \
             expires_at = CASE WHEN $7 OR cancel_requested THEN now() + make_interval(secs => $8) \
                          ELSE expires_at END \
         WHERE id = $1 AND attempts = $2 AND status = 'running' \
         RETURNING status",
    )
    .bind(id)
    .bind(attempt)
    .bind(status)
    .bind(&error)
    .bind(ERROR_HISTORY)
    .bind(run_at)
    .bind(terminal)
    .bind(interval(ttl))
    .fetch_optional(db)
    .await?;
    Ok(status)
}

/// Extends the leases of this worker's running attempts; returns, per task still owned,
/// whether cancellation was requested.
pub async fn renew_leases(
    pool: &PgPool,
    owned: &[(Uuid, i32)],
    lease: Duration,
) -> Result<Vec<(Uuid, bool)>, sqlx::Error> {
    let ids: Vec<Uuid> = owned.iter().map(|o| o.0).collect();
    let attempts: Vec<i32> = owned.iter().map(|o| o.1).collect();
    let rows = sqlx::query(
        "UPDATE tasks t SET lease_expires_at = now() + make_interval(secs => $3) \
         FROM unnest($1::uuid[], $2::int[]) AS v(id, attempts) \
         WHERE t.id = v.id AND t.attempts = v.attempts AND t.status = 'running' \
         RETURNING t.id, t.cancel_requested",
    )
    .bind(&ids)
    .bind(&attempts)
    .bind(interval(lease))
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("cancel_requested")?)))
        .collect()
}

pub async fn cancel_requested(pool: &PgPool, id: Uuid) -> Result<bool, sqlx::Error> {
    let flag: Option<bool> = sqlx::query_scalar("SELECT cancel_requested FROM tasks WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    Ok(flag.unwrap_or(true))
}

/// The status a running task goes back to when its attempt is given back: waiting again,
/// or `cancelled` when cancellation was requested meanwhile (a waiting task with the flag
/// set would never be claimed again).
const GIVE_BACK: &str = "status = CASE WHEN cancel_requested THEN 'cancelled' \
        WHEN attempts > 1 THEN 'retrying' ELSE 'pending' END, \
    attempts = CASE WHEN cancel_requested THEN attempts ELSE attempts - 1 END, \
    finished_at = CASE WHEN cancel_requested THEN now() END, \
    error = CASE WHEN cancel_requested THEN jsonb_build_object('code', 'cancelled', \
        'message', 'cancelled on request before the attempt finished', 'at', now()) ELSE error END, \
    pushed_at = NULL, lease_expires_at = NULL, worker = NULL, updated_at = now()";

/// Gives a running attempt back without counting it, for a worker that shuts down before
/// its handler finished: the task becomes due again at once (or `cancelled`, see
/// `GIVE_BACK`). Returns the new status, `None` if the attempt no longer owned the task.
pub async fn release<'e>(
    db: impl PgExecutor<'e>,
    id: Uuid,
    attempt: i32,
) -> Result<Option<TaskStatus>, sqlx::Error> {
    let sql = format!(
        "UPDATE tasks SET {GIVE_BACK}, run_at = now() \
         WHERE id = $1 AND attempts = $2 AND status = 'running' RETURNING status"
    );
    let status: Option<TaskStatus> = sqlx::query_scalar(&sql)
        .bind(id)
        .bind(attempt)
        .fetch_optional(db)
        .await?;
    Ok(status)
}

/// Puts a running task back to waiting until `run_at` without counting the attempt (see
/// `JobError::Waiting`); `stage` tells clients why. A task whose cancellation was requested
/// ends `cancelled` instead. Returns the new status, `None` if not owned any more.
pub async fn defer<'e>(
    db: impl PgExecutor<'e>,
    id: Uuid,
    attempt: i32,
    run_at: chrono::DateTime<chrono::Utc>,
    stage: &str,
) -> Result<Option<TaskStatus>, sqlx::Error> {
    let sql = format!(
        "UPDATE tasks SET {GIVE_BACK}, run_at = $3, stage = $4 \
         WHERE id = $1 AND attempts = $2 AND status = 'running' RETURNING status"
    );
    let status: Option<TaskStatus> = sqlx::query_scalar(&sql)
        .bind(id)
        .bind(attempt)
        .bind(run_at)
        .bind(stage)
        .fetch_optional(db)
        .await?;
    Ok(status)
}

/// Persists progress at a stage change (the Redis hash carries the percent in between).
pub async fn save_progress(
    pool: &PgPool,
    id: Uuid,
    attempt: i32,
    progress: i16,
    stage: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE tasks SET progress = $3, stage = $4, updated_at = now() \
         WHERE id = $1 AND attempts = $2 AND status = 'running'",
    )
    .bind(id)
    .bind(attempt)
    .bind(progress.clamp(0, 100))
    .bind(stage)
    .execute(pool)
    .await?;
    Ok(())
}

/// A task the relay must (re)push.
#[derive(Debug, Clone)]
pub struct Due {
    pub id: Uuid,
    pub kind: String,
    /// Its worker must run it alone (see [`take_expired`]).
    pub isolate: bool,
}

/// A task the relay ended (its kind's terminal hook runs in the relay's transaction).
#[derive(Debug, Clone)]
pub struct Finished {
    pub id: Uuid,
    pub kind: String,
    pub status: TaskStatus,
    pub error: Option<Value>,
}

/// What one relay step found in a queue.
#[derive(Debug, Default)]
pub struct Taken {
    /// To push (attempts are left).
    pub due: Vec<Due>,
    /// Finished here without a handler: `dead` (no attempts left) or `cancelled`.
    pub finished: Vec<Finished>,
}

/// Where a relay pass stopped in a queue's waiting tasks, in the order it reads them:
/// `(run_at, id)` of the last task it took.
pub type DuePosition = (DateTime<Utc>, Uuid);

/// Locks and marks as pushed up to `limit` due tasks of `queue` that have no live transport
/// message, in `(run_at, id)` order, starting after `after` when given; returns them and the
/// position of the last one. Runs inside the relay's transaction: if the push to Redis fails
/// the transaction rolls back and the rows stay unpushed. `SKIP LOCKED` lets many replicas
/// relay at once. A waiting task whose cancellation was requested (it raced with a worker
/// giving it back) is cancelled here rather than left waiting for a claim that skips it.
///
/// `after` spares a pass the tasks the previous one already pushed and no worker claimed yet
/// (up to `QUEUE_MAX_READY` at the head of the queue, each read through the index and its
/// row); the caller starts from the head again now and then, for what became due behind it.
///
/// The marked rows are found through the primary key (`= ANY (ARRAY(…))`): joined to the
/// CTE instead, the planner hashed the whole table for each pass (EXPLAIN on a 20,000-row
/// backlog: a sequential scan, 15–17 ms per 500 rows, against 9 ms).
pub async fn take_due(
    tx: &mut Transaction<'_, Postgres>,
    queue: &str,
    repush_after: Duration,
    limit: i64,
    after: Option<DuePosition>,
) -> Result<(Taken, Option<DuePosition>), sqlx::Error> {
    // Two statements rather than one with an optional bound: a prepared statement's generic
    // plan could not use `(run_at, id) > …` as an index bound behind an `IS NULL OR`.
    let from = if after.is_some() {
        "AND (run_at, id) > ($4, $5)"
    } else {
        ""
    };
    let sql = format!(
        "WITH due AS ( \
             SELECT id FROM tasks \
             WHERE queue = $1 AND status IN ('pending', 'retrying') AND run_at <= now() {from} \
                 AND (cancel_requested OR pushed_at IS NULL \
                      OR pushed_at < now() - make_interval(secs => $2)) \
             ORDER BY run_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) \
         UPDATE tasks t SET pushed_at = now(), \
             status = CASE WHEN t.cancel_requested THEN 'cancelled' ELSE t.status END, \
             finished_at = CASE WHEN t.cancel_requested THEN now() ELSE t.finished_at END, \
             updated_at = CASE WHEN t.cancel_requested THEN now() ELSE t.updated_at END \
         WHERE t.id = ANY (ARRAY(SELECT id FROM due)) \
         RETURNING t.id, t.kind, t.isolate, t.status, t.error, t.run_at"
    );
    let mut q = sqlx::query(&sql)
        .bind(queue)
        .bind(interval(repush_after))
        .bind(limit);
    if let Some((run_at, id)) = after {
        q = q.bind(run_at).bind(id);
    }
    let rows = q.fetch_all(&mut **tx).await?;
    let mut last: Option<DuePosition> = None;
    for r in &rows {
        let position: DuePosition = (r.try_get("run_at")?, r.try_get("id")?);
        if last.is_none_or(|l| position > l) {
            last = Some(position);
        }
    }
    Ok((split_taken(rows)?, last))
}

fn split_taken(rows: Vec<sqlx::postgres::PgRow>) -> Result<Taken, sqlx::Error> {
    let mut out = Taken::default();
    for r in rows {
        let status: TaskStatus = r.try_get("status")?;
        let id: Uuid = r.try_get("id")?;
        if matches!(status, TaskStatus::Pending | TaskStatus::Retrying) {
            out.due.push(Due {
                id,
                kind: r.try_get("kind")?,
                isolate: r.try_get("isolate")?,
            });
        } else {
            out.finished.push(Finished {
                id,
                kind: r.try_get("kind")?,
                status,
                error: r.try_get("error")?,
            });
        }
    }
    Ok(out)
}

/// Running tasks of `queue` whose lease expired: their worker died or hung. Each goes back
/// to waiting, is cancelled when that was requested, or ends `dead`. A forgiven loss is due
/// now and returned to be pushed at once; a counted one waits its kind's backoff (from
/// `backoffs`; none for a kind not in it) like a failed attempt, and the relay pushes it
/// when it is due.
///
/// Which losses count: a worker killed by one task loses every task it was running, and
/// charging an attempt to each would dead-letter innocent tasks. So a loss while sharing a
/// worker is forgiven (`lease_losses` + 1, the attempt given back to the budget) and, after
/// [`ISOLATE_AFTER_LOSSES`] of them, the task is marked `isolate`: a worker runs it with
/// nothing else in flight. A loss while running alone counts like a failed attempt, so a
/// task that kills its worker is `dead` after its budget of solitary runs.
///
/// Why a counted loss waits: run again at once, an innocent task lost while running alone
/// is due again about a lease after the loss, and a failure that recurs with that period
/// (workers killed every second, each with a 1 s lease: the chaos test) met each of its
/// solitary runs and dead-lettered it. The jittered backoff breaks that lock-step.
pub async fn take_expired(
    tx: &mut Transaction<'_, Postgres>,
    queue: &str,
    limit: i64,
    ttl: Duration,
    backoffs: &BackoffTable,
) -> Result<Taken, sqlx::Error> {
    let rows = sqlx::query(
        "WITH lost AS ( \
             SELECT id FROM tasks \
             WHERE queue = $1 AND status = 'running' AND lease_expires_at < now() \
             ORDER BY lease_expires_at LIMIT $2 FOR UPDATE SKIP LOCKED), \
         decided AS ( \
             SELECT t.id, \
                 CASE WHEN t.isolate THEN 0 ELSE 1 END AS forgiven, \
                 CASE WHEN t.cancel_requested THEN 'cancelled' \
                      WHEN t.isolate AND t.attempts - t.lease_losses >= t.max_attempts THEN 'dead' \
                      ELSE 'retrying' END AS next, \
                 (CASE WHEN t.cancel_requested THEN $3::jsonb ELSE $4::jsonb END) \
                     || jsonb_build_object('attempt', t.attempts) AS err, \
                 CASE WHEN t.isolate THEN COALESCE(random() * LEAST(b.max_ms, b.base_ms * \
                     power(2, LEAST(GREATEST(t.attempts - t.lease_losses - 1, 0), 30))), 0) \
                 ELSE 0 END AS delay_ms \
             FROM tasks t JOIN lost USING (id) \
             LEFT JOIN unnest($8::text[], $9::int8[], $10::int8[]) AS b(kind, base_ms, max_ms) \
                 ON b.kind = t.kind) \
         UPDATE tasks t SET status = d.next, \
             pushed_at = CASE WHEN d.next = 'retrying' AND d.delay_ms > 0 THEN NULL ELSE now() END, \
             lease_losses = t.lease_losses + d.forgiven, \
             isolate = t.isolate OR t.lease_losses + d.forgiven >= $6, \
             run_at = CASE WHEN d.next = 'retrying' \
                 THEN now() + make_interval(secs => d.delay_ms / 1000) ELSE t.run_at END, \
             error = CASE WHEN d.next = 'retrying' THEN t.error ELSE d.err END, \
             errors = CASE WHEN d.next = 'retrying' THEN t.errors ELSE \
                 (CASE WHEN jsonb_array_length(t.errors) >= $5 THEN t.errors - 0 ELSE t.errors END) \
                 || jsonb_build_array(d.err) END, \
             finished_at = CASE WHEN d.next = 'retrying' THEN NULL ELSE now() END, \
             lease_expires_at = NULL, worker = NULL, \
             expires_at = CASE WHEN d.next = 'retrying' THEN t.expires_at \
                          ELSE now() + make_interval(secs => $7) END, \
             updated_at = now() \
         FROM decided d WHERE t.id = d.id \
         RETURNING t.id, t.kind, t.isolate, t.status, t.error, t.pushed_at IS NULL AS later",
    )
    .bind(queue)
    .bind(limit)
    .bind(serde_json::json!({
        "code": "cancelled",
        "message": "cancelled on request; the worker running it was lost",
        "at": Utc::now(),
    }))
    .bind(serde_json::json!({
        "code": "worker_lost",
        "message": "the task's worker was lost each time it ran alone, until no attempts were left",
        "at": Utc::now(),
    }))
    .bind(ERROR_HISTORY)
    .bind(ISOLATE_AFTER_LOSSES)
    .bind(interval(ttl))
    .bind(&backoffs.kinds)
    .bind(&backoffs.base_ms)
    .bind(&backoffs.max_ms)
    .fetch_all(&mut **tx)
    .await?;
    // A delayed retry is left for the pass that finds it due.
    let mut now = Vec::with_capacity(rows.len());
    for row in rows {
        if !row.try_get::<bool, _>("later")? {
            now.push(row);
        }
    }
    split_taken(now)
}

/// The re-drive of failed/dead tasks: a fresh set of attempts, due now, error history kept.
/// `$1` is the retention in seconds; callers add their own conditions.
const REDRIVE: &str = "UPDATE tasks SET status = 'pending', attempts = 0, run_at = now(), \
    lease_losses = 0, isolate = false, pushed_at = NULL, lease_expires_at = NULL, worker = NULL, finished_at = NULL, \
    cancel_requested = false, progress = 0, stage = NULL, updated_at = now(), \
    expires_at = now() + make_interval(secs => $1) \
    WHERE status IN ('failed', 'dead')";

/// Re-drives a `failed` or `dead` task (operator action); returns it if it was re-driven.
/// The caller runs the kind's re-drive hook in the same transaction
/// ([`crate::actions::redrive`]).
pub async fn redrive(
    conn: &mut sqlx::PgConnection,
    id: Uuid,
    ttl: Duration,
) -> Result<Option<TaskRecord>, sqlx::Error> {
    let sql = format!("{REDRIVE} AND id = $2 RETURNING {RECORD_COLUMNS}");
    sqlx::query_as::<_, TaskRecord>(&sql)
        .bind(interval(ttl))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
}

/// Re-drives every task in `status` (`failed` or `dead`), optionally of one kind; returns
/// their ids and kinds.
pub async fn redrive_all(
    conn: &mut sqlx::PgConnection,
    status: TaskStatus,
    kind: Option<&str>,
    ttl: Duration,
) -> Result<Vec<(Uuid, String)>, sqlx::Error> {
    let sql =
        format!("{REDRIVE} AND status = $2 AND ($3::text IS NULL OR kind = $3) RETURNING id, kind");
    sqlx::query_as(&sql)
        .bind(interval(ttl))
        .bind(status)
        .bind(kind)
        .fetch_all(&mut *conn)
        .await
}

/// Tasks in `status` (any requester), newest first, optionally of one kind.
pub async fn list(
    pool: &PgPool,
    status: Option<TaskStatus>,
    kind: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<TaskRecord>, i64), sqlx::Error> {
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM tasks WHERE ($1::text IS NULL OR status = $1) \
             AND ($2::text IS NULL OR kind = $2) ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4"
    );
    let rows = sqlx::query_as::<_, TaskRecord>(&sql)
        .bind(status)
        .bind(kind)
        .bind(limit)
        .bind(offset)
        .fetch_all(pool)
        .await?;
    let total: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tasks WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR kind = $2)",
    )
    .bind(status)
    .bind(kind)
    .fetch_one(pool)
    .await?;
    Ok((rows, total))
}

/// Locks up to `limit` finished tasks past their retention (`expires_at`), oldest first,
/// for a retention job that deletes them with [`delete_many`] in the same transaction
/// (after removing what they point at). Returns `(id, kind, result)`.
pub async fn lock_expired(
    tx: &mut Transaction<'_, Postgres>,
    limit: i64,
) -> Result<Vec<(Uuid, String, Option<Value>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, kind, result FROM tasks \
         WHERE status IN ('completed', 'failed', 'cancelled', 'dead') AND expires_at < now() \
         ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(limit)
    .fetch_all(&mut **tx)
    .await
}

/// Deletes tasks locked by [`lock_expired`]; returns how many.
pub async fn delete_many(
    tx: &mut Transaction<'_, Postgres>,
    ids: &[Uuid],
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM tasks WHERE id = ANY($1)")
        .bind(ids)
        .execute(&mut **tx)
        .await?
        .rows_affected())
}

/// Deletes a task that is not running (operator action); `false` if none was deleted.
pub async fn delete(pool: &PgPool, id: Uuid) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM tasks WHERE id = $1 AND status <> 'running'")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Per queue: counts by state and the age of the oldest due task.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueStats {
    pub queue: String,
    pub pending: i64,
    pub running: i64,
    pub retrying: i64,
    /// Pending or retrying, not due yet.
    pub scheduled: i64,
    pub failed: i64,
    pub dead: i64,
    pub oldest_pending_age_seconds: Option<f64>,
}

/// `known` lists the queues to show even when idle, in the order to show them.
pub async fn queue_stats(pool: &PgPool, known: &[&str]) -> Result<Vec<QueueStats>, sqlx::Error> {
    // Three branches, each matching a partial index's predicate (`tasks_due_idx`,
    // `tasks_lease_idx`, `tasks_dead_letter_idx`), so the cost follows the tasks that are not
    // finished, never the whole table (the console's overview and `/metrics` poll this).
    let rows = sqlx::query(
        "SELECT queue, sum(pending)::int8 AS pending, sum(running)::int8 AS running, \
             sum(retrying)::int8 AS retrying, sum(scheduled)::int8 AS scheduled, \
             sum(failed)::int8 AS failed, sum(dead)::int8 AS dead, min(oldest) AS oldest \
         FROM ( \
             SELECT queue, \
                 count(*) FILTER (WHERE status = 'pending' AND run_at <= now()) AS pending, \
                 0::int8 AS running, \
                 count(*) FILTER (WHERE status = 'retrying' AND run_at <= now()) AS retrying, \
                 count(*) FILTER (WHERE run_at > now()) AS scheduled, \
                 0::int8 AS failed, 0::int8 AS dead, \
                 extract(epoch FROM now() - min(run_at) FILTER (WHERE run_at <= now()))::float8 AS oldest \
             FROM tasks WHERE status IN ('pending', 'retrying') GROUP BY queue \
             UNION ALL \
             SELECT queue, 0, count(*), 0, 0, 0, 0, NULL FROM tasks WHERE status = 'running' GROUP BY queue \
             UNION ALL \
             SELECT queue, 0, 0, 0, 0, count(*) FILTER (WHERE status = 'failed'), \
                 count(*) FILTER (WHERE status = 'dead'), NULL \
             FROM tasks WHERE status IN ('failed', 'dead') GROUP BY queue \
         ) s GROUP BY queue ORDER BY queue",
    )
    .fetch_all(pool)
    .await?;
    let mut found = rows
        .iter()
        .map(|r| {
            Ok(QueueStats {
                queue: r.try_get("queue")?,
                pending: r.try_get("pending")?,
                running: r.try_get("running")?,
                retrying: r.try_get("retrying")?,
                scheduled: r.try_get("scheduled")?,
                failed: r.try_get("failed")?,
                dead: r.try_get("dead")?,
                oldest_pending_age_seconds: r.try_get("oldest")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    // Every known queue, idle ones as zeros, in a fixed order (then any unknown queue names
    // found in the table), so operators and scrapers always see the same series.
    let mut out: Vec<QueueStats> = known
        .iter()
        .map(|q| match found.iter().position(|s| s.queue == *q) {
            Some(i) => found.swap_remove(i),
            None => QueueStats {
                queue: q.to_string(),
                ..QueueStats::default()
            },
        })
        .collect();
    out.extend(found);
    Ok(out)
}

/// Creates tasks of one kind inside the caller's transaction (a fan-out, together with the
/// rows that point at them). They are left unpushed: the relay pushes them within its
/// interval, no faster than `QUEUE_MAX_READY` allows.
pub async fn insert_many_in_tx(
    tx: &mut Transaction<'_, Postgres>,
    ids: &[Uuid],
    params: &[Value],
    kind: KindInfo,
    requester: &str,
    ttl: Duration,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO tasks (id, kind, queue, status, params, max_attempts, requester, run_at, expires_at) \
         SELECT u.id, $3, $4, 'pending', u.params, $5, $6, now(), now() + make_interval(secs => $7) \
         FROM unnest($1::uuid[], $2::jsonb[]) AS u(id, params)",
    )
    .bind(ids)
    .bind(params)
    .bind(kind.name)
    .bind(kind.queue)
    .bind(kind.max_attempts)
    .bind(requester)
    .bind(interval(ttl))
    .execute(&mut **tx)
    .await?;
    Ok(())
}
