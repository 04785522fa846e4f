//! Creating tasks: commit the row, then push its message when Redis has room.

use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::{
    batcher::Batcher,
    store::{self, Inserted, NewTask},
    task::{KindInfo, TaskRecord},
    transport::{Envelope, MessageQueue},
};

#[derive(Debug)]
pub struct Request<'a> {
    /// Which kind (its name, queue and attempt budget).
    pub kind: KindInfo,
    pub params: Value,
    pub requester: &'a str,
    pub idempotency_key: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub run_at: Option<DateTime<Utc>>,
}

#[derive(Debug)]
pub enum Enqueued {
    Created(TaskRecord),
    Replayed(TaskRecord),
    Conflict(TaskRecord),
}

/// Inserts of concurrent requests waiting for one statement (see [`Enqueuer::enqueue`]).
type Inserter = Batcher<NewTask, Result<Inserted, sqlx::Error>>;

/// Most tasks one insert statement creates.
const INSERT_BATCH: usize = 256;

/// Insert statements of grouped requests in flight at once: while one waits for its commit,
/// the next gathers the requests that arrive meanwhile.
const INSERTS_IN_FLIGHT: usize = 4;

#[derive(Clone)]
pub struct Enqueuer {
    pool: PgPool,
    queue: MessageQueue,
    ttl: std::time::Duration,
    /// Started on first use, inside the runtime (an `Enqueuer` may be built outside one).
    inserter: Arc<OnceLock<Inserter>>,
}

impl std::fmt::Debug for Enqueuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enqueuer")
            .field("queue", &self.queue)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Enqueuer {
    pub fn new(pool: PgPool, queue: MessageQueue, ttl: std::time::Duration) -> Self {
        Self {
            pool,
            queue,
            ttl,
            inserter: Arc::new(OnceLock::new()),
        }
    }

    /// Creates the task in a commit shared with the other requests that arrived while the
    /// previous inserts ran: one statement and one WAL flush for all of them, so Postgres'
    /// per-statement work is not paid per request. Each caller still gets its own outcome,
    /// and only once its row is committed.
    async fn insert(&self, new: NewTask) -> Result<Inserted, sqlx::Error> {
        let pool = self.pool.clone();
        let inserter = self.inserter.get_or_init(|| {
            Batcher::spawn(INSERT_BATCH, INSERTS_IN_FLIGHT, move |news| {
                insert_grouped(pool.clone(), news)
            })
        });
        match inserter.call(new.clone()).await {
            Some(outcome) => outcome,
            // The batching task is gone (the runtime is shutting down): insert alone.
            None => store::insert(&self.pool, &new).await,
        }
    }

    /// A `Created` task is committed in Postgres whatever happens to Redis: when the push
    /// fails (or the queue is at `QUEUE_MAX_READY`) the relay pushes it later.
    pub async fn enqueue(&self, req: Request<'_>) -> Result<Enqueued, sqlx::Error> {
        let will_push = self.will_push(&req).await;
        let new = self.new_task(req, will_push);
        let rec = match self.insert(new).await? {
            Inserted::Created(rec) => rec,
            Inserted::Replayed(rec) => return Ok(Enqueued::Replayed(rec)),
            Inserted::Conflict(rec) => return Ok(Enqueued::Conflict(rec)),
        };
        self.push_created(&rec, will_push).await;
        Ok(Enqueued::Created(rec))
    }

    /// Like [`Enqueuer::enqueue`], inside the caller's transaction, so the task and the rows
    /// it works on commit together. After the commit, call [`Enqueuer::push_created`] with
    /// the returned flag (a rolled-back task needs nothing: a stray message claims nothing).
    pub async fn enqueue_in(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        req: Request<'_>,
    ) -> Result<(Enqueued, bool), sqlx::Error> {
        let will_push = self.will_push(&req).await;
        let new = self.new_task(req, will_push);
        Ok(match store::insert_conn(tx, &new).await? {
            Inserted::Created(rec) => (Enqueued::Created(rec), will_push),
            Inserted::Replayed(rec) => (Enqueued::Replayed(rec), false),
            Inserted::Conflict(rec) => (Enqueued::Conflict(rec), false),
        })
    }

    /// Fast path only while the queue has room; past that, work waits in Postgres.
    async fn will_push(&self, req: &Request<'_>) -> bool {
        let due_now = req.run_at.is_none_or(|t| t <= Utc::now());
        due_now
            && match self.queue.room_cached(req.kind.queue).await {
                Ok(room) => room > 0,
                Err(e) => {
                    tracing::warn!(queue = req.kind.queue, error = %e, "redis unavailable; task left for the relay");
                    false
                }
            }
    }

    fn new_task(&self, req: Request<'_>, will_push: bool) -> NewTask {
        let kind = req.kind;
        NewTask {
            id: Uuid::now_v7(),
            kind: kind.name.to_string(),
            queue: kind.queue.to_string(),
            params: req.params,
            max_attempts: kind.max_attempts,
            requester: req.requester.to_string(),
            idempotency_key: req.idempotency_key.map(str::to_string),
            request_id: req.request_id.map(str::to_string),
            run_at: req.run_at,
            ttl: self.ttl,
            will_push,
        }
    }

    /// Pushes the message of a committed task that was marked pushed at insert.
    pub async fn push_created(&self, rec: &TaskRecord, will_push: bool) {
        if !will_push {
            return;
        }
        let envelope = Envelope::new(rec.id, rec.kind.clone());
        if let Err(e) = self.queue.push(&rec.queue, &[envelope]).await {
            tracing::warn!(task.id = %rec.id, error = %e, "push failed; the relay will push the task");
            if let Err(e) = store::mark_unpushed(&self.pool, &[rec.id]).await {
                // The relay still re-pushes after QUEUE_REPUSH_AFTER_SECONDS.
                tracing::warn!(task.id = %rec.id, error = %e, "could not clear pushed_at");
            }
        }
    }
}

/// Inserts a group of requests' tasks in one statement. A statement error may belong to one
/// request's row (a value Postgres refuses), so then each is inserted on its own, at once,
/// and gets its own outcome. A lost connection or an unreachable Postgres is everyone's:
/// each request gets it at once, without a second wait, and rows whose commit may have
/// happened before the connection broke are never inserted a second time.
async fn insert_grouped(pool: PgPool, news: Vec<NewTask>) -> Vec<Result<Inserted, sqlx::Error>> {
    if news.len() > 1 {
        let grouped = match pool.acquire().await {
            Ok(mut conn) => store::insert_many(&mut conn, &news).await,
            Err(e) => Err(e),
        };
        match grouped {
            // Committed: from here an error is one task's (never insert a committed row again).
            Ok(outcomes) => return outcomes,
            Err(e) if outage_copy(&e).is_some() => {
                return news
                    .iter()
                    .filter_map(|_| outage_copy(&e))
                    .map(Err)
                    .collect();
            }
            Err(e) => {
                tracing::debug!(error = %e, tasks = news.len(), "grouped insert failed; inserting each task alone")
            }
        }
    }
    futures::future::join_all(news.iter().map(|new| store::insert(&pool, new))).await
}

/// The same error again, when it says the database could not be reached (not a row's fault).
fn outage_copy(e: &sqlx::Error) -> Option<sqlx::Error> {
    match e {
        sqlx::Error::PoolTimedOut => Some(sqlx::Error::PoolTimedOut),
        sqlx::Error::PoolClosed => Some(sqlx::Error::PoolClosed),
        sqlx::Error::WorkerCrashed => Some(sqlx::Error::WorkerCrashed),
        sqlx::Error::Protocol(message) => Some(sqlx::Error::Protocol(message.clone())),
        sqlx::Error::Io(io) => Some(sqlx::Error::Io(std::io::Error::new(
            io.kind(),
            io.to_string(),
        ))),
        _ => None,
    }
}
