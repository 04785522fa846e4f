//! The kinds' hooks as the engine calls them, by kind name: whoever ends or re-drives a task
//! (runner, relay, api) runs its kind's hook in the same transaction. Built from the
//! [`crate::Registry`]; kinds declare them on [`crate::Kind`].

use std::{collections::BTreeMap, sync::Arc};

use futures::future::BoxFuture;
use serde_json::Value;
use sqlx::{Acquire, PgConnection, Postgres, Transaction};
use uuid::Uuid;

use crate::{
    retry::{Backoff, BackoffTable},
    task::{Ended, TaskStatus},
};

pub(crate) type TerminalHook =
    for<'a> fn(&'a mut PgConnection, &'a Ended) -> BoxFuture<'a, Result<(), sqlx::Error>>;
pub(crate) type RedriveHook =
    for<'a> fn(&'a mut PgConnection, &'a [Uuid]) -> BoxFuture<'a, Result<(), sqlx::Error>>;

/// A kind's hooks, without its handler: what the api and the relay need.
#[derive(Clone, Copy)]
pub struct Hooks {
    pub(crate) on_terminal_failure: TerminalHook,
    pub(crate) on_redrive: RedriveHook,
}

/// What the engine needs of a kind where it does not run it: its hooks, and its retry
/// backoff (the relay delays a counted lost attempt by it, as the runner does a failed one).
#[derive(Clone, Copy)]
pub(crate) struct KindPolicy {
    pub(crate) hooks: Hooks,
    pub(crate) backoff: Backoff,
}

/// Every kind's hooks and backoff by name; a kind not in it (an older or newer version's) has
/// no hooks, and its lost attempts no backoff.
#[derive(Clone, Default)]
pub struct KindHooks(pub(crate) Arc<BTreeMap<&'static str, KindPolicy>>);

impl std::fmt::Debug for KindHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl KindHooks {
    /// Every known kind's backoff, for statements that delay the retries of many tasks.
    pub fn backoffs(&self) -> BackoffTable {
        BackoffTable::of(self.0.iter().map(|(kind, p)| (*kind, p.backoff)))
    }

    /// Runs `kind`'s terminal hook for `ended` on `conn` (inside the ending transaction).
    pub async fn terminal(
        &self,
        conn: &mut PgConnection,
        kind: &str,
        ended: &Ended,
    ) -> Result<(), sqlx::Error> {
        let Some(h) = self.0.get(kind) else {
            return Ok(());
        };
        let mut savepoint = conn.begin().await?;
        let outcome = (h.hooks.on_terminal_failure)(&mut savepoint, ended).await;
        settle(savepoint, outcome, kind, "on_terminal_failure", &[ended.id]).await
    }

    /// After a transition that left task `id` in `status` (`None`: it changed nothing): the
    /// terminal hook when that status ends the task without completing it.
    pub async fn after_transition(
        &self,
        conn: &mut PgConnection,
        kind: &str,
        id: Uuid,
        status: Option<TaskStatus>,
        error: Option<Value>,
    ) -> Result<(), sqlx::Error> {
        match status {
            Some(status @ (TaskStatus::Failed | TaskStatus::Dead | TaskStatus::Cancelled)) => {
                self.terminal(conn, kind, &Ended { id, status, error })
                    .await
            }
            _ => Ok(()),
        }
    }

    /// Runs `kind`'s re-drive hook for `ids` on `conn` (inside the re-drive's transaction).
    pub async fn redriven(
        &self,
        conn: &mut PgConnection,
        kind: &str,
        ids: &[Uuid],
    ) -> Result<(), sqlx::Error> {
        let Some(h) = self.0.get(kind).filter(|_| !ids.is_empty()) else {
            return Ok(());
        };
        let mut savepoint = conn.begin().await?;
        let outcome = (h.hooks.on_redrive)(&mut savepoint, ids).await;
        settle(savepoint, outcome, kind, "on_redrive", ids).await
    }
}

/// A hook runs in a savepoint of the transition's transaction. A transient failure (a
/// deadlock, a lost connection) fails the transition, which its caller retries. Any other
/// failure is a bug in the kind: the hook's writes are rolled back and logged, and the
/// transition still commits — one kind's broken hook must not leave its tasks unable to end
/// (or block the relay's whole batch).
async fn settle(
    savepoint: Transaction<'_, Postgres>,
    outcome: Result<(), sqlx::Error>,
    kind: &str,
    hook: &str,
    ids: &[Uuid],
) -> Result<(), sqlx::Error> {
    match outcome {
        Ok(()) => savepoint.commit().await,
        Err(e) if crate::db::is_transient(&e) => Err(e),
        Err(e) => {
            savepoint.rollback().await?;
            tracing::error!(task.kind = kind, hook, tasks = ?ids, error = %e,
                "a kind's hook failed; its writes are rolled back and the task's transition stands");
            Ok(())
        }
    }
}
