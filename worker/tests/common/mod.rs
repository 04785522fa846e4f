//! Shared by the integration tests: an in-process api and worker on an isolated schema and
//! Redis prefix, test-only job kinds, and a private `redis-server` for fault tests.
#![allow(dead_code)]

use std::{collections::BTreeMap, net::TcpListener, process::Stdio, sync::Arc, time::Duration};

use axum::{
    body::Body,
    http::{Request, StatusCode},
    Router,
};
use jobs::{
    enqueue::{Enqueued, Enqueuer, Request as EnqueueRequest},
    kinds::{KindSpec, Registry},
    queue::{self, Transport},
    task::{
        context::{Done, JobError, TaskContext},
        retry::Backoff,
    },
    testing::TestEnv,
};
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use uuid::Uuid;
use worker::WorkerConfig;

pub const DEMO: &str = "demo-token";
pub const OTHER: &str = "other-token";

pub fn api(env: &TestEnv) -> Router {
    let config = api::ApiConfig {
        core: env.config.clone(),
        bind: "127.0.0.1:0".parse().unwrap(),
        tokens: api::auth::Tokens::parse("demo-token:demo,other-token:other,admin-token:ops:admin")
            .unwrap(),
        body_limit: 64 * 1024,
        long_poll_max: 60,
    };
    api::router(api::AppState::new(
        config,
        env.pool.clone(),
        env.redis.clone(),
    ))
}

/// Sends one request; returns the status and the JSON body (Null when not JSON).
pub async fn call(
    app: &Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

pub async fn assign(app: &Router, body: Value) -> Uuid {
    let (status, resp) = call(app, "POST", "/director/assign", Some(DEMO), Some(body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{resp}");
    resp["taskId"].as_str().unwrap().parse().unwrap()
}

pub fn worker_config(env: &TestEnv, queues: &[&str]) -> WorkerConfig {
    WorkerConfig {
        core: env.config.clone(),
        queues: queues
            .iter()
            .map(|q| (q.to_string(), 8))
            .collect::<BTreeMap<_, _>>(),
        shutdown_timeout: Duration::from_secs(5),
        poll_interval: Duration::from_millis(100),
        heartbeat: Duration::from_secs(1),
        relay_interval: Duration::from_millis(100),
        relay_batch: 500,
    }
}

pub struct RunningWorker {
    shutdown: CancellationToken,
    handle: JoinHandle<anyhow::Result<()>>,
}

impl RunningWorker {
    pub fn start(config: WorkerConfig, registry: Registry) -> Self {
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(worker::run(config, registry, shutdown.clone()));
        Self { shutdown, handle }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.handle.await.unwrap().unwrap();
    }
}

pub fn transport(env: &TestEnv) -> Transport {
    Transport::new(
        env.redis.clone(),
        env.keys.clone(),
        env.config.queue_max_ready,
    )
}

/// Creates a task of `spec` directly (as the api would, without HTTP).
pub async fn enqueue(env: &TestEnv, spec: &KindSpec, params: Value) -> Uuid {
    let enqueuer = Enqueuer::new(env.pool.clone(), transport(env), env.config.task_ttl);
    let outcome = enqueuer
        .enqueue(EnqueueRequest {
            spec,
            params,
            requester: "demo",
            idempotency_key: None,
            request_id: None,
            run_at: None,
        })
        .await
        .unwrap();
    match outcome {
        Enqueued::Created(rec) => rec.id,
        other => panic!("unexpected {other:?}"),
    }
}

pub fn assignment_params(event: &str, tickets: i32, price_cents: i64) -> Value {
    json!({
        "organizerId": "org_demo", "eventId": event, "type": "prepaid",
        "tickets": tickets, "priceCents": price_cents, "currency": "MXN", "metadata": {}
    })
}

pub async fn ledger_rows_for(env: &TestEnv, task: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM director_ledger_entries WHERE task_id = $1")
        .bind(task)
        .fetch_one(&env.pool)
        .await
        .unwrap()
}

// ---------------------------------------------------------------- test kinds ----

const TEST_BACKOFF: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));

/// Always fails with a retryable error.
pub fn failing() -> KindSpec {
    KindSpec::new(
        "test.failing",
        queue::MAINTENANCE,
        4,
        Duration::from_secs(5),
        TEST_BACKOFF,
        |_ctx: TaskContext| async {
            Err(JobError::retryable(
                "upstream_unavailable",
                "the upstream answered 503",
            ))
        },
    )
}

/// Fails twice, then succeeds.
pub fn flaky() -> KindSpec {
    KindSpec::new(
        "test.flaky",
        queue::MAINTENANCE,
        5,
        Duration::from_secs(5),
        TEST_BACKOFF,
        |ctx: TaskContext| async move {
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

pub fn permanent() -> KindSpec {
    KindSpec::new(
        "test.permanent",
        queue::MAINTENANCE,
        5,
        Duration::from_secs(5),
        TEST_BACKOFF,
        |_ctx: TaskContext| async {
            Err(JobError::permanent("invalid_input", "this can never work"))
        },
    )
}

pub fn panicking() -> KindSpec {
    KindSpec::new(
        "test.panicking",
        queue::MAINTENANCE,
        2,
        Duration::from_secs(5),
        TEST_BACKOFF,
        |_ctx: TaskContext| async {
            panic!("boom in handler");
        },
    )
}

/// Takes far longer than its timeout.
pub fn hanging() -> KindSpec {
    KindSpec::new(
        "test.hanging",
        queue::MAINTENANCE,
        2,
        Duration::from_millis(300),
        TEST_BACKOFF,
        |_ctx: TaskContext| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(Done::Result(json!({})))
        },
    )
}

/// Works in 200 chunks of 25 ms, reporting progress and checking for cancellation.
pub fn slow() -> KindSpec {
    KindSpec::new(
        "test.slow",
        queue::MAINTENANCE,
        1,
        Duration::from_secs(60),
        TEST_BACKOFF,
        |ctx: TaskContext| async move {
            for chunk in 0..200u32 {
                ctx.check_cancel().await?;
                ctx.progress((chunk / 2) as u8, "work").await;
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            Ok(Done::Result(json!({ "chunks": 200 })))
        },
    )
}

pub fn test_registry() -> Registry {
    let mut r = Registry::standard();
    for spec in [
        failing(),
        flaky(),
        permanent(),
        panicking(),
        hanging(),
        slow(),
    ] {
        r.register(spec);
    }
    r
}

pub fn arc<T>(t: T) -> Arc<T> {
    Arc::new(t)
}

// ------------------------------------------------------------ private redis ----

/// A `redis-server` of the test's own, on a free port, that the test may stop and restart.
pub struct PrivateRedis {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    pub async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut r = Self { port, child: None };
        r.restart().await;
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub async fn restart(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/test.sh installs it)");
        self.child = Some(child);
        for _ in 0..100 {
            if let Ok(client) = redis::Client::open(self.url()) {
                if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
                    if redis::cmd("PING")
                        .query_async::<String>(&mut conn)
                        .await
                        .is_ok()
                    {
                        return;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("private redis-server did not start on port {}", self.port);
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
