//! `noop`: does nothing and returns its params. A probe for operators (is the pipeline
//! moving end to end?) and the unit of the task-layer benchmarks, where the cost measured
//! must be ours (claim, run, complete in Postgres), not a job's.
//!
//! Two params make it a fault probe: `sleepMs` (up to 5,000) keeps it in flight for a while,
//! and `crash: true` aborts the whole worker process, the way a poison task would. The
//! crash only happens in a worker started with `NOOP_ALLOW_CRASH=1` (crash tests and the
//! chaos benchmark); anywhere else it is refused as a permanent error.

use std::time::Duration;

use serde_json::json;

use engine::{retry::Backoff, Done, JobError, Kind};

use crate::{queues, Ctx, Services};

pub const NAME: &str = "noop";

/// The `noop` kind.
pub struct Noop;

impl Kind for Noop {
    type State = Services;
    const NAME: &'static str = NAME;
    const QUEUE: &'static str = queues::MAINTENANCE;
    const MAX_ATTEMPTS: i32 = 3;
    const TIMEOUT: Duration = Duration::from_secs(10);
    const BACKOFF: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));

    async fn run(ctx: Ctx) -> Result<Done, JobError> {
        run(ctx).await
    }
}

/// Longest `sleepMs` honoured (below the kind's timeout).
const MAX_SLEEP_MS: u64 = 5_000;

async fn run(ctx: Ctx) -> Result<Done, JobError> {
    let params: serde_json::Value = ctx.params()?;
    if params.get("crash").and_then(serde_json::Value::as_bool) == Some(true) {
        if std::env::var("NOOP_ALLOW_CRASH").as_deref() != Ok("1") {
            return Err(JobError::permanent(
                "crash_not_allowed",
                "this worker was not started with NOOP_ALLOW_CRASH=1",
            ));
        }
        tracing::error!(task.id = %ctx.id, "noop asked to crash: aborting the worker process");
        std::process::abort();
    }
    if let Some(ms) = params.get("sleepMs").and_then(serde_json::Value::as_u64) {
        tokio::time::sleep(Duration::from_millis(ms.min(MAX_SLEEP_MS))).await;
    }
    Ok(Done::Result(json!({ "echo": params })))
}
