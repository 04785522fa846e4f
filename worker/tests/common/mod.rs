//! Shared by the integration tests: an in-process api and worker on an isolated schema and
//! Redis prefix, test-only job kinds, and a private `redis-server` for fault tests.
#![allow(dead_code)]

use std::{collections::BTreeMap, net::TcpListener, process::Stdio, sync::Arc, time::Duration};

use axum::{
    body::Body,
    http::{Request, StatusCode},
    Router,
};
use engine::{
    enqueue::{Enqueued, Enqueuer, Request as EnqueueRequest},
    retry::Backoff,
    transport::MessageQueue,
    Done, JobError, KindSpec, Registry,
};
use jobs::{queues as queue, testing::TestEnv};
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use uuid::Uuid;
use worker::WorkerConfig;

pub const DEMO: &str = "demo-token";
pub const OTHER: &str = "other-token";
pub const ADMIN: &str = "admin-token";

pub fn api(env: &TestEnv) -> Router {
    api::router(api_state(env))
}

/// The api's state for `env`, for tests that change a part of it before building the router.
pub fn api_state(env: &TestEnv) -> api::AppState {
    let config = api::ApiConfig {
        core: env.config.clone(),
        bind: "127.0.0.1:0".parse().unwrap(),
        tokens: api::auth::Tokens::parse("demo-token:demo,other-token:other,admin-token:ops:admin")
            .unwrap(),
        body_limit: 64 * 1024,
        long_poll_max: 60,
        security: Default::default(),
    };
    api::AppState::new(config, env.pool.clone(), env.redis.clone())
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
        statement_timeout: engine::db::WORKER_STATEMENT_TIMEOUT,
    }
}

pub struct RunningWorker {
    shutdown: CancellationToken,
    handle: JoinHandle<anyhow::Result<()>>,
}

impl RunningWorker {
    pub fn start(config: WorkerConfig, registry: Registry<jobs::Services>) -> Self {
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(worker::run(config, registry, shutdown.clone()));
        Self { shutdown, handle }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.handle.await.unwrap().unwrap();
    }
}

pub fn transport(env: &TestEnv) -> MessageQueue {
    MessageQueue::new(
        env.redis.clone(),
        env.keys.clone(),
        env.config.queue_max_ready,
    )
}

/// Creates a task of `spec` directly (as the api would, without HTTP).
pub async fn enqueue(env: &TestEnv, spec: &KindSpec<jobs::Services>, params: Value) -> Uuid {
    let enqueuer = Enqueuer::new(env.pool.clone(), transport(env), env.config.task_ttl);
    let outcome = enqueuer
        .enqueue(EnqueueRequest {
            kind: spec.info(),
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

    /// The redis-server's process id (to pause it with SIGSTOP).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
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

/// A test whose external service is missing: reported as SKIPPED, or a failure under
/// scripts/test.sh (TAQUILLA_REQUIRE_SERVICES), which always provides the services.
pub fn skipped(why: &str) {
    if std::env::var_os("TAQUILLA_REQUIRE_SERVICES").is_some() {
        panic!("required test service missing: {why}");
    }
    eprintln!("SKIPPED: {why}");
}

/// A private aiosmtpd writing a Maildir, or `None` when aiosmtpd is not installed
/// (`SMTP_SINK_PYTHON` names a python that has it; scripts/test.sh sets it up).
pub struct SmtpSink {
    child: std::process::Child,
    pub port: u16,
    pub maildir: std::path::PathBuf,
}

impl SmtpSink {
    pub async fn start() -> Option<Self> {
        let python = std::env::var("SMTP_SINK_PYTHON").unwrap_or_else(|_| "python3".into());
        let has = std::process::Command::new(&python)
            .args(["-c", "import aiosmtpd"])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !has {
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let maildir = std::env::temp_dir().join(format!("taquilla-maildir-{}", Uuid::now_v7()));
        let child = std::process::Command::new(&python)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Some(Self {
                    child,
                    port,
                    maildir,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    pub async fn wait_message(&self) -> Vec<u8> {
        let new = self.maildir.join("new");
        for _ in 0..200 {
            if let Some(entry) = std::fs::read_dir(&new).ok().and_then(|mut d| d.next()) {
                return std::fs::read(entry.unwrap().path()).unwrap();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no message reached the SMTP sink");
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.maildir);
    }
}

/// Fixture (MXN unless noted), ages as of 2025-12-31:
///  1 org_demo ev_demo    assign_prepaid 100 t (eq 100) 35000  2025-08-01
///  2 org_demo ev_premium assign_loan     10 t (eq  20) 20000  2025-10-15
///  3 org_demo            payment                       40000  2025-11-01
///  4 org_demo ev_demo    assign_prepaid   5 t (eq   5)  5000  2025-12-20
///  5 org_acme ev_acme    assign_prepaid  50 t (eq  50) 10000  2025-11-20
///  6 org_acme            payment                       15000  2025-12-01  (credit 5000)
///  7 org_demo ev_demo    assign_prepaid   7 t (eq   7)   700 USD 2025-12-05
pub async fn director_fixture(env: &TestEnv) {
    env.seed_demo().await;
    sqlx::raw_sql(
        "INSERT INTO events (id, organizer_id, name, type) VALUES ('ev_acme', 'org_acme', 'Acme Fest', 'standard');
         INSERT INTO director_ledger_entries (id, organizer_id, event_id, entry_type, tickets, tickets_equivalent, amount_cents, currency, task_id, created_at) VALUES
          (gen_random_uuid(), 'org_demo', 'ev_demo',    'assign_prepaid', 100, 100, 35000, 'MXN', gen_random_uuid(), '2025-08-01 10:00Z'),
          (gen_random_uuid(), 'org_demo', 'ev_premium', 'assign_loan',     10,  20, 20000, 'MXN', gen_random_uuid(), '2025-10-15 10:00Z'),
          (gen_random_uuid(), 'org_demo', NULL,         'payment',          0,   0, 40000, 'MXN', gen_random_uuid(), '2025-11-01 10:00Z'),
          (gen_random_uuid(), 'org_demo', 'ev_demo',    'assign_prepaid',   5,   5,  5000, 'MXN', gen_random_uuid(), '2025-12-20 10:00Z'),
          (gen_random_uuid(), 'org_acme', 'ev_acme',    'assign_prepaid',  50,  50, 10000, 'MXN', gen_random_uuid(), '2025-11-20 10:00Z'),
          (gen_random_uuid(), 'org_acme', NULL,         'payment',          0,   0, 15000, 'MXN', gen_random_uuid(), '2025-12-01 10:00Z'),
          (gen_random_uuid(), 'org_demo', 'ev_demo',    'assign_prepaid',   7,   7,   700, 'USD', gen_random_uuid(), '2025-12-05 10:00Z');
         INSERT INTO guests (id, event_id, name, status) VALUES
          ('g1', 'ev_demo', 'A', 'confirmed'), ('g2', 'ev_demo', 'B', 'confirmed'), ('g3', 'ev_demo', 'C', 'scanned'),
          ('g4', 'ev_acme', 'D', 'pending');
         INSERT INTO deliveries (id, event_id, guest_id, channel, kind, status) VALUES
          (gen_random_uuid(), 'ev_demo', 'g1', 'email', 'invitation', 'delivered'),
          (gen_random_uuid(), 'ev_demo', 'g2', 'whatsapp', 'invitation', 'failed');
         REFRESH MATERIALIZED VIEW mv_kpi_tickets_entregados;
         REFRESH MATERIALIZED VIEW mv_kpi_deuda_abierta;
         REFRESH MATERIALIZED VIEW mv_kpi_top_organizadores;",
    )
    .execute(&env.pool)
    .await
    .unwrap();
}

/// Every production kind's hooks, for tests that end tasks through the store directly.
pub fn hooks() -> engine::kind::KindHooks {
    jobs::kinds::registry().unwrap().hooks()
}
