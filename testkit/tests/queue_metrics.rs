//! The `queue_metrics` log (seeds/001: "ejecuta el worker con LOG_FORMAT=json para
//! inspeccionar queue_metrics periódicos"): a worker process started with `LOG_FORMAT=json`
//! writes, every `QUEUE_METRICS_INTERVAL_SECONDS`, one JSON line per queue it serves with
//! the depth by state, the ready messages in Redis, the oldest due age, what it finished
//! since the previous line and the live workers.

use std::{process::Stdio, time::Duration};

use chrono::Utc;
use engine::{
    enqueue::{Enqueuer, Request},
    KindInfo, KindSpec, TaskStatus,
};
use jobs::kinds::{noop::Noop, report_export::ReportExport};
use serde_json::{json, Value};
use testkit::{fixtures, worker_command, TestApp};
use tokio::io::{AsyncBufReadExt, BufReader};

const FIELDS: [&str; 14] = [
    "worker",
    "queue",
    "pending",
    "running",
    "retrying",
    "scheduled",
    "redis_ready",
    "oldest_pending_age_seconds",
    "completed",
    "failed",
    "retried",
    "dead",
    "workers_alive",
    "claimed_ahead",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_worker_logs_one_queue_metrics_line_per_served_queue() {
    let app = TestApp::spawn().await;
    let noop = KindSpec::of::<Noop>();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(fixtures::enqueue(&app, &noop, json!({})).await);
    }
    // Refused without NOOP_ALLOW_CRASH: a permanent failure.
    let failing = fixtures::enqueue(&app, &noop, json!({ "crash": true })).await;
    // Not due for an hour: counted as scheduled, never run.
    Enqueuer::new(
        app.pool.clone(),
        fixtures::transport(&app),
        app.config.task_ttl,
    )
    .enqueue(Request {
        kind: KindInfo::of::<ReportExport>(),
        params: json!({ "report": "ledger", "format": "csv" }),
        requester: "demo",
        idempotency_key: None,
        request_id: None,
        run_at: Some(Utc::now() + chrono::Duration::hours(1)),
    })
    .await
    .unwrap();

    let mut child = worker_command(&app, "maintenance,reports", 30)
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .env("QUEUE_METRICS_INTERVAL_SECONDS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("worker binary");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();

    let mut events: Vec<Value> = Vec::new();
    let (mut completed, mut failed) = (0, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let done = |events: &[Value], completed, failed| {
        completed >= 3
            && failed >= 1
            && events.iter().any(|e| e["queue"] == "reports")
            && events
                .iter()
                .any(|e| e["queue"] == "maintenance" && e["workers_alive"].as_i64() >= Some(1))
    };
    while !done(&events, completed, failed) {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("no complete queue_metrics picture in 30 s: {events:#?}"))
            .unwrap()
            .expect("the worker's output ended");
        let Ok(event) = serde_json::from_str::<Value>(&line) else {
            panic!("a line that is not JSON with LOG_FORMAT=json: {line}");
        };
        if event["message"] != "queue_metrics" {
            continue;
        }
        if event["queue"] == "maintenance" {
            completed += event["completed"].as_u64().unwrap();
            failed += event["failed"].as_u64().unwrap();
        }
        events.push(event);
    }
    child.start_kill().unwrap();
    let _ = child.wait().await;

    for e in &events {
        for field in FIELDS {
            assert!(e.get(field).is_some(), "{field} missing in {e}");
        }
        assert_eq!(e["level"], "INFO", "{e}");
        assert!(
            ["maintenance", "reports"].contains(&e["queue"].as_str().unwrap()),
            "{e}"
        );
        assert!(e["window_seconds"].as_f64().unwrap() > 0.0, "{e}");
    }
    assert_eq!((completed, failed), (3, 1), "{events:#?}");
    let reports: Vec<&Value> = events.iter().filter(|e| e["queue"] == "reports").collect();
    for r in &reports {
        assert_eq!(r["scheduled"], 1, "{r}");
        assert_eq!(r["pending"], 0, "{r}");
        assert_eq!(r["completed"], 0, "{r}");
        assert_eq!(r["claimed_ahead"], 0, "{r}");
    }
    for id in ids {
        assert_eq!(app.task(id).await.status(), TaskStatus::Completed);
    }
    assert_eq!(app.task(failing).await.status(), TaskStatus::Failed);
}
