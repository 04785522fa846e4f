//! How an attempt ends: a result ([`Done`]), or why not ([`JobError`]), which decides what
//! happens to the task next.

use serde_json::Value;

/// Why an attempt did not complete. The variant decides what happens next.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JobError {
    /// Transient (network, 5xx, lock timeout): retried with backoff until `max_attempts`,
    /// then `dead`.
    #[error("{code}: {message}")]
    Retryable { code: String, message: String },
    /// Like `Retryable`, but the next attempt must not start before `after` (a provider's
    /// `Retry-After`): the delay is the larger of `after` and the kind's backoff.
    #[error("{code}: {message} (retry after {after:?})")]
    RetryAfter {
        code: String,
        message: String,
        after: std::time::Duration,
    },
    /// Will never succeed (invalid params, unknown entity): `failed` at once.
    #[error("{code}: {message}")]
    Permanent { code: String, message: String },
    /// The handler saw a cancel request and stopped: `cancelled`.
    #[error("cancelled")]
    Cancelled,
    /// Not now, and not a failure: a resource the task needs is busy (e.g. its organizer's
    /// export slot). The task goes back to waiting for `after`, its attempt given back, with
    /// `reason` as its stage so clients see why.
    #[error("waiting: {reason}")]
    Waiting {
        reason: String,
        after: std::time::Duration,
    },
    /// This attempt lost the task (lease expired and another worker took over): nothing is
    /// recorded, the new owner decides.
    #[error("superseded by another attempt")]
    Superseded,
}

impl JobError {
    pub fn retryable(code: &str, message: impl Into<String>) -> Self {
        Self::Retryable {
            code: code.into(),
            message: message.into(),
        }
    }

    pub fn permanent(code: &str, message: impl Into<String>) -> Self {
        Self::Permanent {
            code: code.into(),
            message: message.into(),
        }
    }
}

impl From<sqlx::Error> for JobError {
    fn from(e: sqlx::Error) -> Self {
        Self::retryable("database_error", e.to_string())
    }
}

/// Proof that the handler completed its task itself (see [`TaskContext::complete_in`]).
#[derive(Debug)]
pub struct Committed(pub(crate) ());

/// A write that must commit together with its task's completion, done in the runner's
/// batched completion statement instead of a transaction of its own (one commit for many
/// tasks). `sql` is one data-modifying statement reading `{done}` (a subquery: give it an
/// alias, `FROM {done} e`): the rows `(id uuid, arg text)` of the tasks of the batch that
/// carry this effect *and* were completed by it, so a superseded attempt's effect is never
/// applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Effect {
    pub sql: &'static str,
    pub arg: String,
}

/// How a successful attempt ends.
#[derive(Debug)]
pub enum Done {
    /// The runner stores this result and marks the task completed (batched).
    Result(Value),
    /// Like `Result`, with a write committed in the same statement as the completion.
    ResultWith(Value, Effect),
    /// Already completed in the handler's transaction, together with its side effects.
    Committed(Committed),
}
