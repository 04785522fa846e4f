//! Task states that always end (issue 10, §3): a cancelled task ends `cancelled` whatever
//! its attempt does, a row whose params cannot be read fails instead of looping, a kind
//! this worker does not know waits for one that does, a bulk send never blocks its own
//! queue, and re-driving a dead delivery sends it again.

use std::time::Duration;

use axum::http::StatusCode;
use engine::{retry::Backoff, AttemptError, Done, KindSpec, Registry, TaskStatus};
use jobs::{kinds::delivery, queues as queue};
use serde_json::json;
use testkit::{fixtures::*, kinds::*, *};
use uuid::Uuid;
use wiremock::{matchers::method, Mock, MockServer, ResponseTemplate};

const WAIT: Duration = Duration::from_secs(20);
const FAST: Backoff = Backoff::new(Duration::from_millis(50), Duration::from_millis(200));

fn errors(rec: &engine::TaskRecord) -> Vec<AttemptError> {
    serde_json::from_value(rec.errors.clone()).unwrap()
}

/// Starts `test.ignores_cancel` with `then`, cancels it while it runs, and returns the
/// finished task.
async fn cancel_while_running(app: &TestApp, then: &str) -> engine::TaskRecord {
    let worker = app.start_worker(&[queue::MAINTENANCE]);
    let id = enqueue(app, &ignores_cancel(), json!({ "then": then })).await;
    app.wait_until(id, WAIT, |s| s == TaskStatus::Running).await;
    let outcome = engine::actions::cancel(&app.pool, &testkit::kinds::hooks(), id, None)
        .await
        .unwrap();
    assert!(matches!(
        outcome,
        engine::actions::CancelOutcome::Requested(_)
    ));
    let rec = app.wait_finished(id, WAIT).await;
    worker.stop().await;
    rec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancelled_task_whose_attempt_then_fails_ends_cancelled_and_its_stream_ends() {
    let app = TestApp::builder()
        .workers(&[queue::MAINTENANCE])
        .spawn()
        .await;
    let id = enqueue(&app, &ignores_cancel(), json!({ "then": "fail" })).await;
    app.wait_until(id, WAIT, |s| s == TaskStatus::Running).await;
    let (status, _) = app.cancel(id, DEMO).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // The event stream ends once the task does.
    let req = axum::http::Request::builder()
        .uri(format!("/tasks/{id}/events"))
        .header("authorization", format!("Bearer {DEMO}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = app.request(req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body = tokio::time::timeout(WAIT, axum::body::to_bytes(resp.into_body(), 1 << 20))
        .await
        .expect("the event stream of a cancelled task ends")
        .unwrap();
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("\"status\":\"cancelled\""), "{body}");

    let rec = app.wait_finished(id, WAIT).await;
    assert_eq!(rec.status(), TaskStatus::Cancelled);
    assert_eq!(rec.error.as_ref().unwrap()["code"], "cancelled");
    assert_eq!(
        errors(&rec).last().unwrap().code,
        "upstream_unavailable",
        "the attempt's own outcome stays in the history"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancelled_task_whose_attempt_panics_ends_cancelled() {
    let app = TestApp::spawn().await;
    let rec = cancel_while_running(&app, "panic").await;
    assert_eq!(rec.status(), TaskStatus::Cancelled);
    assert_eq!(errors(&rec).last().unwrap().code, "panic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancelled_task_whose_attempt_times_out_ends_cancelled() {
    let app = TestApp::spawn().await;
    let rec = cancel_while_running(&app, "hang").await;
    assert_eq!(rec.status(), TaskStatus::Cancelled);
    assert_eq!(errors(&rec).last().unwrap().code, "timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancelled_task_whose_attempt_waits_for_a_slot_ends_cancelled() {
    let app = TestApp::spawn().await;
    let rec = cancel_while_running(&app, "wait").await;
    assert_eq!(rec.status(), TaskStatus::Cancelled);
    assert_eq!(rec.error.as_ref().unwrap()["code"], "cancelled");
    assert!(rec.finished_at.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancelled_task_released_at_shutdown_ends_cancelled() {
    let app = TestApp::spawn().await;
    let mut cfg = app.worker_config(&[queue::MAINTENANCE]);
    cfg.shutdown_timeout = Duration::from_millis(300);
    let worker = RunningWorker::start(cfg, test_registry());
    let id = enqueue(&app, &ignores_cancel(), json!({ "then": "block" })).await;
    app.wait_until(id, WAIT, |s| s == TaskStatus::Running).await;
    engine::actions::cancel(&app.pool, &testkit::kinds::hooks(), id, None)
        .await
        .unwrap();
    // Let the handler see the request and block, then shut down: the attempt is released.
    tokio::time::sleep(Duration::from_millis(200)).await;
    worker.stop().await;
    let rec = app.task(id).await;
    assert_eq!(
        rec.status(),
        TaskStatus::Cancelled,
        "released with its cancellation requested: nothing would ever claim it"
    );
    assert_eq!(rec.attempts, 1);
}

/// A delivery cancelled while its send is on the wire, whose provider then answers 503:
/// the task ends `cancelled` and its delivery `failed`, not `queued` forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancelled_delivery_whose_send_fails_leaves_no_delivery_queued() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_delay(Duration::from_millis(1500)))
        .mount(&server)
        .await;
    let app = whatsapp_deliveries(&server).await;
    let (status, body) = app
        .send("ev_demo", "g1", json!({"channel": "whatsapp"}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id: Uuid = body["taskId"].as_str().unwrap().parse().unwrap();
    app.wait_until(id, WAIT, |s| s == TaskStatus::Running).await;
    let (status, _) = app.cancel(id, DEMO).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let rec = app.wait_finished(id, WAIT).await;
    assert_eq!(rec.status(), TaskStatus::Cancelled);
    let (delivery_status, code): (String, Option<String>) =
        sqlx::query_as("SELECT status, error->>'code' FROM deliveries WHERE id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(delivery_status, "failed");
    assert_eq!(code.as_deref(), Some("cancelled"));
    app.stop().await;
}

/// A test environment whose WhatsApp provider is `server`, guest g1 of ev_demo, the api, and
/// a worker on the deliveries queue with fast retries.
async fn whatsapp_deliveries(server: &MockServer) -> TestApp {
    let mut registry = jobs::kinds::registry().unwrap();
    let mut spec = engine::KindSpec::of::<jobs::kinds::delivery::Delivery>();
    spec.backoff = FAST;
    registry.replace(spec);
    let provider = server.uri();
    let app = TestApp::builder()
        .core(move |c| {
            c.deliveries.whatsapp_api_url = provider;
            c.deliveries.whatsapp_api_key = Some("test-key".into());
        })
        .registry(registry)
        .spawn()
        .await;
    seed_guest(&app).await;
    app.add_worker(&[queue::DELIVERIES]);
    app
}

async fn seed_guest(app: &TestApp) {
    app.seed_demo().await;
    sqlx::query(
        "INSERT INTO guests (id, event_id, name, email, phone) \
         VALUES ('g1', 'ev_demo', 'Ana Demo', 'ana@example.com', '+5215550000')",
    )
    .execute(&app.pool)
    .await
    .unwrap();
}

/// Status and error code read with SQL: the row's params cannot be decoded into a
/// `TaskRecord` either.
async fn status_of(app: &TestApp, id: Uuid) -> (String, Option<String>, i32) {
    sqlx::query_as("SELECT status, error->>'code', attempts FROM tasks WHERE id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_task_whose_params_cannot_be_decoded_fails_with_a_clear_code() {
    let app = TestApp::spawn().await;
    // Numbers Postgres keeps in jsonb but that no f64 holds, next to a healthy task of the
    // same kind (one claim batch may hold all three).
    let mut bad = Vec::new();
    for params in [r#"{"a": 1e400}"#, r#"{"a": 1.7976931348623157e309}"#] {
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO tasks (id, kind, queue, status, params, max_attempts, requester, run_at, expires_at) \
             VALUES ($1, 'noop', 'maintenance', 'pending', $2::jsonb, 3, 'demo', now(), now() + interval '1 day')",
        )
        .bind(id)
        .bind(params)
        .execute(&app.pool)
        .await
        .unwrap();
        bad.push(id);
    }
    let good = enqueue(
        &app,
        &engine::KindSpec::of::<jobs::kinds::noop::Noop>(),
        json!({"a": 1.5}),
    )
    .await;
    let worker = app.start_worker(&[queue::MAINTENANCE]);
    assert_eq!(
        app.wait_finished(good, WAIT).await.status(),
        TaskStatus::Completed
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    for id in bad {
        loop {
            let (status, code, attempts) = status_of(&app, id).await;
            if status == "failed" {
                assert_eq!(code.as_deref(), Some("undecodable_params"));
                assert_eq!(attempts, 1, "failed at its first attempt, not retried");
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "task {id} still {status} (attempts {attempts})"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    worker.stop().await;
}

/// A kind only a newer worker knows.
fn newer_kind() -> KindSpec<jobs::Services> {
    KindSpec::from_fn(
        "test.newer_kind",
        queue::MAINTENANCE,
        2,
        Duration::from_secs(5),
        FAST,
        |ctx: jobs::Ctx| async move { Ok(Done::Result(json!({ "ranOnAttempt": ctx.attempt }))) },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_that_does_not_know_a_kind_leaves_the_task_for_one_that_does() {
    let app = TestApp::spawn().await;
    let old = RunningWorker::start(
        app.worker_config(&[queue::MAINTENANCE]),
        jobs::kinds::registry().unwrap(),
    );
    let id = enqueue(&app, &newer_kind(), json!({})).await;
    // The old worker takes it, finds no handler and gives it back for later.
    let rec = app
        .wait_until_record(id, WAIT, |rec| {
            rec.stage.is_some() || rec.status().is_terminal()
        })
        .await;
    assert_eq!(rec.status(), TaskStatus::Pending, "{:?}", rec.error);
    assert_eq!(rec.attempts, 0, "no attempt used");
    assert!(rec.stage.as_deref().unwrap().contains("test.newer_kind"));
    assert!(
        rec.run_at > chrono::Utc::now() + chrono::Duration::seconds(20),
        "not pushed again at once (no hot loop): {}",
        rec.run_at
    );
    old.stop().await;

    // A worker of the new version, once the wait is over, runs it.
    sqlx::query("UPDATE tasks SET run_at = now() WHERE id = $1")
        .bind(id)
        .execute(&app.pool)
        .await
        .unwrap();
    let mut registry = jobs::kinds::registry().unwrap();
    registry.replace(newer_kind());
    let new = RunningWorker::start(app.worker_config(&[queue::MAINTENANCE]), registry);
    let rec = app.wait_finished(id, WAIT).await;
    assert_eq!(rec.status(), TaskStatus::Completed, "{:?}", rec.error);
    assert_eq!(rec.attempts, 1);
    new.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bulk_sends_complete_on_a_deliveries_queue_with_a_single_slot() {
    let app = TestApp::builder().seed_demo().spawn().await;
    sqlx::query(
        "INSERT INTO guests (id, event_id, name, phone) \
         SELECT 'c' || i, 'ev_demo', 'Guest ' || i, '+52155' || lpad(i::text, 6, '0') \
         FROM generate_series(1, 4) AS i",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let mut cfg = app.worker_config(&[queue::DELIVERIES]);
    cfg.queues.insert(queue::DELIVERIES.into(), 1);
    let mut registry = jobs::kinds::registry().unwrap();
    for mut spec in [
        engine::KindSpec::of::<jobs::kinds::delivery::Delivery>(),
        engine::KindSpec::of::<jobs::kinds::delivery_bulk::DeliveryBulk>(),
    ] {
        spec.backoff = FAST;
        registry.replace(spec);
    }
    let worker = RunningWorker::start(cfg, registry);
    // Two bulk sends, more than the queue's one slot.
    let mut parents = Vec::new();
    for kind in ["invitation", "reminder"] {
        let (status, body) = app
            .bulk(
                "ev_demo",
                json!({"channel": "whatsapp", "kind": kind, "all": true}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        parents.push(body["taskId"].as_str().unwrap().parse::<Uuid>().unwrap());
    }
    for parent in parents {
        let rec = app.wait_finished(parent, Duration::from_secs(30)).await;
        assert_eq!(rec.status(), TaskStatus::Completed, "{:?}", rec.error);
        let result = rec.result.unwrap();
        assert_eq!(
            (result["total"].clone(), result["sent"].clone()),
            (json!(4), json!(4))
        );
    }
    let _ = std::fs::remove_dir_all(&app.config.deliveries.outbox_dir);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelling_a_waiting_bulk_send_cancels_its_children() {
    let app = TestApp::builder().seed_demo().spawn().await;
    sqlx::query(
        "INSERT INTO guests (id, event_id, name, phone) \
         SELECT 'k' || i, 'ev_demo', 'Guest ' || i, '+52155' || lpad(i::text, 6, '0') \
         FROM generate_series(1, 3) AS i",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    // Only the parent's kind runs: the children stay pending, the parent keeps waiting.
    let mut registry = Registry::default();
    registry.replace(engine::KindSpec::of::<
        jobs::kinds::delivery_bulk::DeliveryBulk,
    >());
    let worker = RunningWorker::start(app.worker_config(&[queue::DELIVERIES]), registry);
    let (_, body) = app
        .bulk("ev_demo", json!({"channel": "whatsapp", "all": true}))
        .await;
    let parent: Uuid = body["taskId"].as_str().unwrap().parse().unwrap();
    // Fanned out: its children exist and it waits for them.
    app.wait_until_record(parent, WAIT, |rec| rec.stage.as_deref() == Some("sending"))
        .await;
    let (status, body) = app.cancel(parent, DEMO).await;
    assert!(status.is_success(), "{body}");
    let rec = app.wait_finished(parent, WAIT).await;
    assert_eq!(rec.status(), TaskStatus::Cancelled);
    let children: Vec<(String, String)> = sqlx::query_as(
        "SELECT t.status, d.status FROM deliveries d JOIN tasks t ON t.id = d.task_id \
         WHERE d.bulk_task_id = $1",
    )
    .bind(parent)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(children.len(), 3);
    assert!(
        children
            .iter()
            .all(|(t, d)| t == "cancelled" && d == "failed"),
        "{children:?}"
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redriving_a_dead_delivery_sends_it_again() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(delivery::MAX_ATTEMPTS as u64)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "messaging_product": "whatsapp",
            "contacts": [{"input": "5215550000", "wa_id": "5215550000"}],
            "messages": [{"id": "wamid.redriven"}],
        })))
        .mount(&server)
        .await;
    let app = whatsapp_deliveries(&server).await;
    let (_, body) = app
        .send("ev_demo", "g1", json!({"channel": "whatsapp"}))
        .await;
    let id: Uuid = body["taskId"].as_str().unwrap().parse().unwrap();
    assert_eq!(app.wait_finished(id, WAIT).await.status(), TaskStatus::Dead);

    let (status, body) = app
        .call(
            "POST",
            &format!("/admin/tasks/{id}/retry"),
            Some("admin-token"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let rec = app.wait_finished(id, WAIT).await;
    assert_eq!(rec.status(), TaskStatus::Completed, "{:?}", rec.error);
    let result = rec.result.unwrap();
    assert_eq!(result["status"], "sent", "{result}");
    assert_eq!(result.get("alreadyDone"), None, "{result}");
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        delivery::MAX_ATTEMPTS as usize + 1,
        "the re-drive sent once more"
    );
    let (status, message_id): (String, Option<String>) =
        sqlx::query_as("SELECT status, provider_message_id FROM deliveries WHERE id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(status, "sent");
    assert_eq!(message_id.as_deref(), Some("wamid.redriven"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_cancel_statements_past_their_timeout() {
    let app = TestApp::spawn().await;
    let pool = engine::db::connect(&app.config.database_url, 1, Duration::from_millis(300))
        .await
        .unwrap();
    let shown: String = sqlx::query_scalar("SHOW statement_timeout")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(shown, "300ms");
    let err = sqlx::query("SELECT pg_sleep(2)")
        .execute(&pool)
        .await
        .expect_err("cancelled by statement_timeout");
    let code = err
        .as_database_error()
        .and_then(|e| e.code().map(|c| c.to_string()));
    assert_eq!(code.as_deref(), Some("57014"), "{err}");
}
