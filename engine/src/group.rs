//! Group commit: the effects of many tasks of one kind written in one transaction together
//! with their completions, instead of one transaction per task.
//!
//! A handler hands its task's item (what to write) to its kind's group and waits
//! ([`crate::TaskContext::complete_in_group`]); whatever items queued up meanwhile are
//! written together by the kind's [`GroupWrite`], and the tasks the transaction still owns
//! are completed in it. Each task's effects therefore commit exactly with its completion,
//! as with [`crate::TaskContext::complete_in`], while the statements, the triggers they
//! fire and the commit are shared by the group.
//!
//! One task does not fail or repeat the others: the writer answers an error for an item it
//! cannot write (a missing row, a value out of range) and writes the rest; if the
//! transaction itself fails, the group is committed again one task at a time, so only the
//! task that breaks it fails, and a task whose attempt lost the task (lease expired,
//! another worker took over) is left out, its effects never written.

use std::{
    any::{Any, TypeId},
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::future::BoxFuture;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::{
    batcher::{with_retries, Batcher},
    outcome::{Committed, Done, JobError},
    store,
};

/// Most tasks in one group transaction.
const GROUP_MAX: usize = 256;

/// Group transactions in flight at once per kind and process. One: groups of one kind
/// move the same roll-up rows (a day's totals), so a second one in flight only waits for
/// the first's locks, and meanwhile the next group grows (measured: assignment drain at
/// concurrency 64, 2,485/s with two in flight; see BENCHMARKS.md).
const GROUPS_IN_FLIGHT: usize = 1;

/// A kind's writer of effects for a group of its tasks.
pub trait GroupWrite: Send + Sync + 'static {
    /// What one task asks to write.
    type Item: Send + Sync + 'static;

    /// Writes the effects of `items` inside `tx` (every item's task is locked and owned by
    /// this transaction) and answers, in the same order, each task's result, or the error
    /// it ends with; an item answered with an error must have written nothing. An `Err` of
    /// the whole call rolls the group back (it is then retried task by task).
    fn write<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        items: &'a [&'a Self::Item],
    ) -> BoxFuture<'a, Result<Vec<Result<Value, JobError>>, sqlx::Error>>;
}

struct Pending<I> {
    id: Uuid,
    attempt: i32,
    item: I,
}

type Outcome = Result<Done, JobError>;

/// The group committer of one writer type, per process.
pub struct GroupCommit<I> {
    batcher: Batcher<Pending<I>, Outcome>,
}

impl<I: Send + Sync + 'static> GroupCommit<I> {
    pub fn new<W: GroupWrite<Item = I>>(pool: PgPool, writer: W, ttl: Duration) -> Self {
        let writer = Arc::new(writer);
        let batcher = Batcher::spawn(GROUP_MAX, GROUPS_IN_FLIGHT, move |group| {
            let pool = pool.clone();
            let writer = writer.clone();
            async move { commit_group(&pool, &*writer, ttl, group).await }
        });
        Self { batcher }
    }

    /// Writes `item` for attempt `attempt` of task `id` and completes the task, in the next
    /// group transaction.
    pub async fn commit(&self, id: Uuid, attempt: i32, item: I) -> Outcome {
        let pending = Pending { id, attempt, item };
        self.batcher.call(pending).await.unwrap_or_else(|| {
            Err(JobError::retryable(
                "group_commit_stopped",
                "the group committer of this process stopped",
            ))
        })
    }
}

/// One group committer per writer type, per runtime (so tests with several runtimes in one
/// process never share one).
#[derive(Default)]
pub struct Groups {
    by_writer: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

impl Groups {
    /// The committer of writer type `W`, created with `make` on first use.
    pub fn get_or_init<W: GroupWrite>(
        &self,
        make: impl FnOnce() -> GroupCommit<W::Item>,
    ) -> Arc<GroupCommit<W::Item>> {
        let mut map = self.by_writer.lock().unwrap_or_else(|e| e.into_inner());
        let any = map
            .entry(TypeId::of::<W>())
            .or_insert_with(|| Arc::new(make()))
            .clone();
        drop(map);
        // Keyed by `W`, whose item type is fixed: the downcast cannot fail.
        any.downcast::<GroupCommit<W::Item>>()
            .expect("group committer stored under its writer's type")
    }
}

async fn commit_group<W: GroupWrite>(
    pool: &PgPool,
    writer: &W,
    ttl: Duration,
    group: Vec<Pending<W::Item>>,
) -> Vec<Outcome> {
    let all: Vec<&Pending<W::Item>> = group.iter().collect();
    let failed = match with_retries("group commit", || commit_once(pool, writer, ttl, &all)).await {
        Ok(outcomes) => return outcomes,
        Err(e) => e,
    };
    if group.len() == 1 || crate::db::is_transient(&failed) {
        // One task, or the database itself is unreachable after the retries: committing one
        // task at a time would only repeat the wait per task. Each attempt is retried later.
        let error = JobError::from(failed);
        return group.iter().map(|_| Err(error.clone())).collect();
    }
    tracing::warn!(tasks = group.len(), error = %failed, "group commit failed; committing its tasks one at a time");
    let mut outcomes = Vec::with_capacity(group.len());
    for pending in &group {
        let alone = [pending];
        let outcome = match with_retries("commit", || commit_once(pool, writer, ttl, &alone)).await
        {
            Ok(mut one) => one.pop().unwrap_or(Err(JobError::Superseded)),
            Err(e) => Err(JobError::from(e)),
        };
        outcomes.push(outcome);
    }
    outcomes
}

/// One transaction: lock what the group still owns, write its effects, complete the tasks
/// the writer answered with a result, commit.
async fn commit_once<W: GroupWrite>(
    pool: &PgPool,
    writer: &W,
    ttl: Duration,
    group: &[&Pending<W::Item>],
) -> Result<Vec<Outcome>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let attempts: Vec<(Uuid, i32)> = group.iter().map(|p| (p.id, p.attempt)).collect();
    let owned: HashSet<Uuid> = store::lock_owned(&mut tx, &attempts)
        .await?
        .into_iter()
        .collect();
    let mine: Vec<&W::Item> = group
        .iter()
        .filter(|p| owned.contains(&p.id))
        .map(|p| &p.item)
        .collect();
    let written = if mine.is_empty() {
        Vec::new()
    } else {
        writer.write(&mut tx, &mine).await?
    };
    if written.len() != mine.len() {
        return Err(sqlx::Error::Protocol(format!(
            "a group writer answered {} outcomes for {} items",
            written.len(),
            mine.len()
        )));
    }
    let mut written = written.into_iter();
    let mut outcomes = Vec::with_capacity(group.len());
    let mut completions = Vec::new();
    for p in group {
        if !owned.contains(&p.id) {
            outcomes.push(Err(JobError::Superseded));
            continue;
        }
        match written.next() {
            Some(Ok(result)) => {
                completions.push((p.id, p.attempt, result, None));
                outcomes.push(Ok(Done::Committed(Committed(()))));
            }
            Some(Err(e)) => outcomes.push(Err(e)),
            None => outcomes.push(Err(JobError::Superseded)),
        }
    }
    if !completions.is_empty() {
        // Locked above: every one of them completes.
        store::complete_many(&mut *tx, &completions, ttl).await?;
    }
    tx.commit().await?;
    Ok(outcomes)
}
