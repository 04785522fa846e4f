//! Test-only job kinds on the maintenance queue: each plays one way a job can behave
//! (fail, flake, panic, hang, run slowly, ignore a cancel), so the engine's handling of it
//! can be observed end to end.

use std::time::Duration;

use engine::{retry::Backoff, Done, JobError, KindSpec, Registry};
use jobs::queues as queue;
use serde_json::{json, Value};

const TEST_BACKOFF: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));

/// Always fails with a retryable error.
pub fn failing() -> KindSpec<jobs::Services> {
    KindSpec::from_fn(
        "test.failing",
        queue::MAINTENANCE,
        4,
        Duration::from_secs(5),
        TEST_BACKOFF,
        |_ctx: jobs::Ctx| async {
            Err(JobError::retryable(
                "upstream_unavailable",
                "the upstream answered 503",
            ))
        },
    )
}

/// Fails twice, then succeeds.
pub fn flaky() -> KindSpec<jobs::Services> {
    KindSpec::from_fn(
        "test.flaky",
        queue::MAINTENANCE,
        5,
        Duration::from_secs(5),
        TEST_BACKOFF,
        |ctx: jobs::Ctx| async move {
            if ctx.attempt < 3 {
                Err(JobError::retryable(
                    "flaky",
                    format!("attempt {} failed", ctx.attempt),
                ))
            } else {
                Ok(Done::Result(json!({ "succeededOnAttempt": ctx.attempt })))
            }
        },
    )
}

pub fn permanent() -> KindSpec<jobs::Services> {
    KindSpec::from_fn(
        "test.permanent",
        queue::MAINTENANCE,
        5,
        Duration::from_secs(5),
        TEST_BACKOFF,
        |_ctx: jobs::Ctx| async {
            Err(JobError::permanent("invalid_input", "this can never work"))
        },
    )
}

pub fn panicking() -> KindSpec<jobs::Services> {
    KindSpec::from_fn(
        "test.panicking",
        queue::MAINTENANCE,
        2,
        Duration::from_secs(5),
        TEST_BACKOFF,
        |_ctx: jobs::Ctx| async {
            panic!("boom in handler");
        },
    )
}

/// Takes far longer than its timeout.
pub fn hanging() -> KindSpec<jobs::Services> {
    KindSpec::from_fn(
        "test.hanging",
        queue::MAINTENANCE,
        2,
        Duration::from_millis(300),
        TEST_BACKOFF,
        |_ctx: jobs::Ctx| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(Done::Result(json!({})))
        },
    )
}

/// Works in 200 chunks of 25 ms, reporting progress and checking for cancellation.
pub fn slow() -> KindSpec<jobs::Services> {
    KindSpec::from_fn(
        "test.slow",
        queue::MAINTENANCE,
        1,
        Duration::from_secs(60),
        TEST_BACKOFF,
        |ctx: jobs::Ctx| async move {
            for chunk in 0..200u32 {
                ctx.check_cancel().await?;
                ctx.progress((chunk / 2) as u8, "work").await;
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            Ok(Done::Result(json!({ "chunks": 200 })))
        },
    )
}

/// Runs until its cancellation is requested, ignores it, then ends its attempt as
/// `params.then` says: `fail` (retryable), `panic`, `hang` (past its timeout), `wait`
/// (gives its attempt back), `block` (until the worker shuts down). The attempt's outcome
/// must not matter: the task ends `cancelled`.
pub fn ignores_cancel() -> KindSpec<jobs::Services> {
    KindSpec::from_fn(
        "test.ignores_cancel",
        queue::MAINTENANCE,
        3,
        Duration::from_secs(3),
        TEST_BACKOFF,
        |ctx: jobs::Ctx| async move {
            let then: String = ctx
                .params::<Value>()?
                .get("then")
                .and_then(Value::as_str)
                .unwrap_or("fail")
                .to_string();
            for _ in 0..500 {
                if engine::store::cancel_requested(ctx.pool(), ctx.id)
                    .await
                    .unwrap_or(false)
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            match then.as_str() {
                "panic" => panic!("panicked after the cancel request"),
                "hang" | "block" => {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    Ok(Done::Result(json!({})))
                }
                "wait" => Err(JobError::Waiting {
                    reason: "waiting_for_slot".into(),
                    after: Duration::from_millis(100),
                }),
                _ => Err(JobError::retryable(
                    "upstream_unavailable",
                    "503 after the cancel request",
                )),
            }
        },
    )
}

/// The standard kinds plus every test kind.
pub fn test_registry() -> Registry<jobs::Services> {
    let mut r = jobs::kinds::registry().unwrap();
    for spec in [
        failing(),
        flaky(),
        permanent(),
        panicking(),
        hanging(),
        slow(),
        ignores_cancel(),
    ] {
        r.replace(spec);
    }
    r
}

/// Every production kind's hooks, for tests that end tasks through the engine directly.
pub fn hooks() -> engine::kind::KindHooks {
    jobs::kinds::registry()
        .expect("no duplicate kind names")
        .hooks()
}
