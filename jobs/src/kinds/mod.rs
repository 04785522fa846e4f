//! Job kinds: one module each, holding its params, validation, policy and handler.
//!
//! Adding a kind touches its own module, one line in [`Registry::standard`] and one route
//! in the api.

pub mod assignment;
pub mod delivery;
pub mod delivery_bulk;
pub mod kpi_refresh;
pub mod noop;
pub mod payment;
pub mod report_export;
pub mod task_cleanup;
pub mod wa_inbound;

use std::{collections::BTreeMap, future::Future, pin::Pin, sync::Arc, time::Duration};

use crate::task::{
    context::{Done, JobError, TaskContext},
    retry::Backoff,
};

pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Done, JobError>> + Send>>;
pub type Handler = Arc<dyn Fn(TaskContext) -> HandlerFuture + Send + Sync>;

/// A kind's stable name and policy, declared in one place next to its handler.
#[derive(Clone)]
pub struct KindSpec {
    /// Wire identity (task rows, envelopes, metrics): never rename.
    pub name: &'static str,
    pub queue: &'static str,
    pub max_attempts: i32,
    /// Per attempt; an attempt that takes longer is recorded as a retryable failure.
    pub timeout: Duration,
    pub backoff: Backoff,
    pub handler: Handler,
}

impl std::fmt::Debug for KindSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KindSpec")
            .field("name", &self.name)
            .field("queue", &self.queue)
            .field("max_attempts", &self.max_attempts)
            .field("timeout", &self.timeout)
            .field("backoff", &self.backoff)
            .finish()
    }
}

impl KindSpec {
    /// A spec from an async handler function.
    pub fn new<F, Fut>(
        name: &'static str,
        queue: &'static str,
        max_attempts: i32,
        timeout: Duration,
        backoff: Backoff,
        handler: F,
    ) -> Self
    where
        F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Done, JobError>> + Send + 'static,
    {
        Self {
            name,
            queue,
            max_attempts,
            timeout,
            backoff,
            handler: Arc::new(move |ctx| Box::pin(handler(ctx))),
        }
    }
}

/// A kind that writes the director ledger: the assignments queue and its shared policy
/// (several attempts with a short backoff; the write and the completion commit together).
pub(crate) fn ledger_writer<F, Fut>(name: &'static str, handler: F) -> KindSpec
where
    F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Done, JobError>> + Send + 'static,
{
    KindSpec::new(
        name,
        crate::queue::ASSIGNMENTS,
        5,
        Duration::from_secs(30),
        Backoff::new(Duration::from_secs(1), Duration::from_secs(60)),
        handler,
    )
}

/// Fails the task for good when the organizer does not exist (no retry loop on a missing row).
pub(crate) async fn require_organizer(
    conn: &mut sqlx::PgConnection,
    organizer_id: &str,
) -> Result<(), JobError> {
    if crate::domain::ledger::organizer_exists(conn, organizer_id).await? {
        Ok(())
    } else {
        Err(JobError::permanent(
            "organizer_not_found",
            format!("organizer {organizer_id:?} does not exist"),
        ))
    }
}

/// The kinds a process knows, by name.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    kinds: BTreeMap<&'static str, KindSpec>,
}

impl Registry {
    /// Every production kind.
    pub fn standard() -> Self {
        let mut r = Self::default();
        r.register(assignment::spec());
        r.register(delivery::spec());
        r.register(delivery_bulk::spec());
        r.register(noop::spec());
        r.register(payment::spec());
        r.register(kpi_refresh::spec());
        r.register(report_export::spec());
        r.register(task_cleanup::spec());
        r.register(wa_inbound::spec());
        r
    }

    /// Adds (or replaces) a kind.
    pub fn register(&mut self, spec: KindSpec) -> &mut Self {
        self.kinds.insert(spec.name, spec);
        self
    }

    pub fn get(&self, name: &str) -> Option<&KindSpec> {
        self.kinds.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &KindSpec> {
        self.kinds.values()
    }
}
