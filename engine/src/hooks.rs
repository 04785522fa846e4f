//! The kinds' hooks as the engine calls them, by kind name: whoever ends or re-drives a task
//! (runner, relay, api) runs its kind's hook in the same transaction. Built from the
//! [`crate::Registry`]; kinds declare them on [`crate::Kind`].

use std::{collections::BTreeMap, sync::Arc};

use futures::future::BoxFuture;
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::task::{Ended, TaskStatus};

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

/// Every kind's hooks by name; a kind not in it (an older or newer version's) has none.
#[derive(Clone, Default)]
pub struct KindHooks(pub(crate) Arc<BTreeMap<&'static str, Hooks>>);

impl std::fmt::Debug for KindHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl KindHooks {
    /// Runs `kind`'s terminal hook for `ended` on `conn` (inside the ending transaction).
    pub async fn terminal(
        &self,
        conn: &mut PgConnection,
        kind: &str,
        ended: &Ended,
    ) -> Result<(), sqlx::Error> {
        match self.0.get(kind) {
            Some(h) => (h.on_terminal_failure)(conn, ended).await,
            None => Ok(()),
        }
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
        match self.0.get(kind) {
            Some(h) if !ids.is_empty() => (h.on_redrive)(conn, ids).await,
            _ => Ok(()),
        }
    }
}
