//! Job kinds: what a product implements per kind of work ([`Kind`]), and the table a
//! process runs them from ([`Registry`]).
//!
//! A kind's policy is associated constants, so the api (which only enqueues) and the worker
//! (which runs) read the same values from the same type. Its hooks are how a kind keeps its
//! own rows in step with its tasks, whoever ends them: the runner, the relay (a lost worker,
//! a cancelled waiting task) or the api (a cancel, a re-drive). They run inside the
//! transaction of that transition, so the task and the kind's rows never disagree.

use std::{collections::BTreeMap, future::Future, pin::Pin, sync::Arc, time::Duration};

use sqlx::PgConnection;
use uuid::Uuid;

pub use crate::hooks::KindHooks;
pub use crate::task::{Ended, KindInfo};
use crate::{
    context::TaskContext,
    hooks::{Hooks, KindPolicy},
    outcome::{Done, JobError},
    retry::Backoff,
};

/// One kind of job. Implemented by a unit struct per kind in the product:
///
/// ```ignore
/// pub struct Ping;
/// impl Kind for Ping {
///     type State = Services;
///     const NAME: &'static str = "ping";
///     const QUEUE: &'static str = "maintenance";
///     async fn run(ctx: TaskContext<Services>) -> Result<Done, JobError> { … }
/// }
/// ```
pub trait Kind: Send + Sync + 'static {
    /// The product state handlers see through [`TaskContext::state`].
    type State: Send + Sync + 'static;
    /// Wire identity (task rows, envelopes, metrics): never rename.
    const NAME: &'static str;
    const QUEUE: &'static str;
    /// Attempts before a retryable failure becomes `dead`.
    const MAX_ATTEMPTS: i32 = 5;
    /// Per attempt; an attempt that takes longer is recorded as a retryable failure.
    const TIMEOUT: Duration = Duration::from_secs(60);
    const BACKOFF: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));

    /// One attempt.
    fn run(
        ctx: TaskContext<Self::State>,
    ) -> impl Future<Output = Result<Done, JobError>> + Send + 'static;

    /// The task ended `failed`, `dead` or `cancelled`, whoever ended it; runs in the
    /// transaction that ends it (an error rolls the transition back: it is tried again).
    fn on_terminal_failure<'a>(
        conn: &'a mut PgConnection,
        ended: &'a Ended,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'a {
        let _ = (conn, ended);
        async { Ok(()) }
    }

    /// An operator re-drove these `failed`/`dead` tasks of this kind (they are `pending`
    /// again); runs in the re-drive's transaction.
    fn on_redrive<'a>(
        conn: &'a mut PgConnection,
        ids: &'a [Uuid],
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'a {
        let _ = (conn, ids);
        async { Ok(()) }
    }
}

impl KindInfo {
    pub const fn of<K: Kind>() -> Self {
        Self {
            name: K::NAME,
            queue: K::QUEUE,
            max_attempts: K::MAX_ATTEMPTS,
        }
    }
}

pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Done, JobError>> + Send>>;
pub type Handler<S> = Arc<dyn Fn(TaskContext<S>) -> HandlerFuture + Send + Sync>;
impl Hooks {
    pub(crate) fn of<K: Kind>() -> Self {
        Self {
            on_terminal_failure: |conn, ended| Box::pin(K::on_terminal_failure(conn, ended)),
            on_redrive: |conn, ids| Box::pin(K::on_redrive(conn, ids)),
        }
    }

    /// For kinds without a [`Kind`] type (tests' ad-hoc kinds): nothing to keep in step.
    pub(crate) fn none() -> Self {
        Self {
            on_terminal_failure: |_, _| Box::pin(async { Ok(()) }),
            on_redrive: |_, _| Box::pin(async { Ok(()) }),
        }
    }
}

/// A kind as a process runs it: its policy, handler and hooks.
pub struct KindSpec<S> {
    pub name: &'static str,
    pub queue: &'static str,
    pub max_attempts: i32,
    pub timeout: Duration,
    pub backoff: Backoff,
    pub handler: Handler<S>,
    hooks: Hooks,
}

impl<S> Clone for KindSpec<S> {
    fn clone(&self) -> Self {
        Self {
            handler: self.handler.clone(),
            ..*self
        }
    }
}

impl<S> std::fmt::Debug for KindSpec<S> {
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

impl<S: Send + Sync + 'static> KindSpec<S> {
    /// The spec of a [`Kind`].
    pub fn of<K: Kind<State = S>>() -> Self {
        Self {
            name: K::NAME,
            queue: K::QUEUE,
            max_attempts: K::MAX_ATTEMPTS,
            timeout: K::TIMEOUT,
            backoff: K::BACKOFF,
            handler: Arc::new(|ctx| Box::pin(K::run(ctx))),
            hooks: Hooks::of::<K>(),
        }
    }

    /// An ad-hoc kind from a closure, without hooks (tests, benchmarks).
    pub fn from_fn<F, Fut>(
        name: &'static str,
        queue: &'static str,
        max_attempts: i32,
        timeout: Duration,
        backoff: Backoff,
        handler: F,
    ) -> Self
    where
        F: Fn(TaskContext<S>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Done, JobError>> + Send + 'static,
    {
        Self {
            name,
            queue,
            max_attempts,
            timeout,
            backoff,
            handler: Arc::new(move |ctx| Box::pin(handler(ctx))),
            hooks: Hooks::none(),
        }
    }
}

impl<S> KindSpec<S> {
    pub fn info(&self) -> KindInfo {
        KindInfo {
            name: self.name,
            queue: self.queue,
            max_attempts: self.max_attempts,
        }
    }
}

/// Two kinds registered under one name: refused, since the name is the task's identity.
#[derive(Debug, thiserror::Error)]
#[error("job kind {0:?} is registered twice")]
pub struct DuplicateKind(pub &'static str);

/// The kinds a process knows, by name.
pub struct Registry<S> {
    kinds: BTreeMap<&'static str, KindSpec<S>>,
}

impl<S> Clone for Registry<S> {
    fn clone(&self) -> Self {
        Self {
            kinds: self.kinds.clone(),
        }
    }
}

impl<S> Default for Registry<S> {
    fn default() -> Self {
        Self {
            kinds: BTreeMap::new(),
        }
    }
}

impl<S> std::fmt::Debug for Registry<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.kinds.keys()).finish()
    }
}

impl<S: Send + Sync + 'static> Registry<S> {
    /// Adds a kind; a second kind with the same name is refused.
    pub fn register(&mut self, spec: KindSpec<S>) -> Result<&mut Self, DuplicateKind> {
        if self.kinds.contains_key(spec.name) {
            return Err(DuplicateKind(spec.name));
        }
        self.kinds.insert(spec.name, spec);
        Ok(self)
    }

    /// Adds a kind or replaces the one of the same name: for tests and benchmarks that tune a
    /// production kind's policy (a shorter backoff). Production registries use
    /// [`Registry::register`], which refuses duplicates.
    pub fn replace(&mut self, spec: KindSpec<S>) -> &mut Self {
        self.kinds.insert(spec.name, spec);
        self
    }

    /// Adds a [`Kind`].
    pub fn with<K: Kind<State = S>>(mut self) -> Result<Self, DuplicateKind> {
        self.register(KindSpec::of::<K>())?;
        Ok(self)
    }
}

impl<S> Registry<S> {
    pub fn get(&self, name: &str) -> Option<&KindSpec<S>> {
        self.kinds.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &KindSpec<S>> {
        self.kinds.values()
    }

    /// The hooks of every kind, for processes that end tasks without running them.
    pub fn hooks(&self) -> KindHooks {
        KindHooks(Arc::new(
            self.kinds
                .iter()
                .map(|(n, s)| {
                    let policy = KindPolicy {
                        hooks: s.hooks,
                        backoff: s.backoff,
                    };
                    (*n, policy)
                })
                .collect(),
        ))
    }
}
