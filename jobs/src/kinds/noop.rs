//! `noop`: does nothing and returns its params. A probe for operators (is the pipeline
//! moving end to end?) and the unit of the task-layer benchmarks, where the cost measured
//! must be ours (claim, run, complete in Postgres), not a job's.

use std::time::Duration;

use serde_json::json;

use super::KindSpec;
use crate::{
    queue,
    task::{
        context::{Done, JobError, TaskContext},
        retry::Backoff,
    },
};

pub const NAME: &str = "noop";

pub fn spec() -> KindSpec {
    KindSpec::new(
        NAME,
        queue::MAINTENANCE,
        3,
        Duration::from_secs(10),
        Backoff::new(Duration::from_secs(1), Duration::from_secs(30)),
        run,
    )
}

async fn run(ctx: TaskContext) -> Result<Done, JobError> {
    let params: serde_json::Value = ctx.params()?;
    Ok(Done::Result(json!({ "echo": params })))
}
