//! `POST /director/assign` end to end: api → Postgres → Redis → worker → ledger.

use std::time::Duration;

use axum::http::StatusCode;
use engine::TaskStatus;
use jobs::queues as queue;
use serde_json::json;
use testkit::{fixtures::*, *};

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn assignments_complete_with_exact_cents_and_premium_equivalents() {
    let app = TestApp::builder()
        .seed_demo()
        .workers(&[queue::ASSIGNMENTS])
        .spawn()
        .await;

    let standard = app.assign(json!({"organizerId":"org_demo","eventId":"ev_demo","type":"prepaid","tickets":100,"price":3.5})).await.task_id();
    let rec = app.wait_finished(standard, WAIT).await;
    assert_eq!(rec.status(), TaskStatus::Completed, "{:?}", rec.error);
    assert_eq!(rec.attempts, 1);
    let result = rec.result.unwrap();
    assert_eq!(result["entry"]["entryType"], "assign_prepaid");
    assert_eq!(result["entry"]["tickets"], 100);
    assert_eq!(result["entry"]["ticketsEquivalent"], 100);
    assert_eq!(result["entry"]["amountCents"], 35_000);
    assert_eq!(result["entry"]["currency"], "MXN");

    // A result's balance is as of its own entry: send the second one after the first.
    let premium = app.assign(json!({"organizerId":"org_demo","eventId":"ev_premium","type":"loan","tickets":7,"price":0.1})).await.task_id();
    let rec = app.wait_finished(premium, WAIT).await;
    assert_eq!(rec.status(), TaskStatus::Completed, "{:?}", rec.error);
    let result = rec.result.unwrap();
    assert_eq!(result["entry"]["entryType"], "assign_loan");
    assert_eq!(result["entry"]["ticketsEquivalent"], 14, "premium factor 2");
    assert_eq!(result["entry"]["amountCents"], 70, "7 × 0.10 exactly");

    assert_eq!(ledger_rows_for(&app, standard).await, 1);
    assert_eq!(ledger_rows_for(&app, premium).await, 1);
    let (total, equivalent): (i64, i64) = sqlx::query_as(
        "SELECT sum(amount_cents)::bigint, sum(tickets_equivalent)::bigint FROM director_ledger_entries",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((total, equivalent), (35_070, 114));

    // The result endpoint, under both names, shows the entry and the balance.
    for path in [
        format!("/tasks/{premium}/result"),
        format!("/director/reports/tasks/{premium}/result"),
    ] {
        let (status, body) = app.call("GET", &path, Some(DEMO), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["balance"]["assignedCents"], 35_070);
        assert_eq!(body["balance"]["paidCents"], 0);
        assert_eq!(body["balance"]["debtCents"], 35_070);
        assert_eq!(body["taskId"], premium.to_string());
        assert!(body["requestId"].is_string());
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_event_or_organizer_fails_at_once_without_retry() {
    let app = TestApp::builder()
        .seed_demo()
        .workers(&[queue::ASSIGNMENTS])
        .spawn()
        .await;

    let no_event = app.assign(json!({"organizerId":"org_demo","eventId":"ev_nope","type":"prepaid","tickets":1,"price":1})).await.task_id();
    let no_org = app.assign(json!({"organizerId":"org_nope","eventId":"ev_demo","type":"prepaid","tickets":1,"price":1})).await.task_id();
    for (id, code) in [
        (no_event, "event_not_found"),
        (no_org, "organizer_not_found"),
    ] {
        let rec = app.wait_finished(id, WAIT).await;
        assert_eq!(rec.status(), TaskStatus::Failed);
        assert_eq!(rec.attempts, 1, "a permanent error is not retried");
        assert_eq!(rec.error.as_ref().unwrap()["code"], code);
        assert_eq!(ledger_rows_for(&app, id).await, 0);
        let (status, body) = app.task_result(id, DEMO).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(body["error"]["code"], "task_failed");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotency_key_replays_the_same_task_and_refuses_other_params() {
    let app = TestApp::builder().seed_demo().spawn().await;
    let body = json!({"organizerId":"org_demo","eventId":"ev_demo","type":"prepaid","tickets":5,"price":2});
    let send = |body: serde_json::Value, key: &'static str| {
        let app = &app;
        async move {
            let req = axum::http::Request::builder()
                .method("POST")
                .uri("/director/assign")
                .header("authorization", "Bearer demo-token")
                .header("content-type", "application/json")
                .header("idempotency-key", key)
                .body(axum::body::Body::from(body.to_string()))
                .unwrap();
            let resp = app.request(req).await;
            let status = resp.status();
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .unwrap();
            (
                status,
                serde_json::from_slice::<serde_json::Value>(&bytes).unwrap(),
            )
        }
    };
    let (s1, b1) = send(body.clone(), "order-42").await;
    let (s2, b2) = send(body.clone(), "order-42").await;
    assert_eq!((s1, s2), (StatusCode::ACCEPTED, StatusCode::ACCEPTED));
    assert_eq!(
        b1["taskId"], b2["taskId"],
        "a retried request gets the same task"
    );
    let (s3, b3) = send(json!({"organizerId":"org_demo","eventId":"ev_demo","type":"prepaid","tickets":6,"price":2}), "order-42").await;
    assert_eq!(s3, StatusCode::CONFLICT, "{b3}");
    assert_eq!(b3["error"]["code"], "idempotency_conflict");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tasks_are_private_to_their_requester() {
    let app = TestApp::builder().seed_demo().spawn().await;
    let id = app.assign(json!({"organizerId":"org_demo","eventId":"ev_demo","type":"prepaid","tickets":1,"price":1})).await.task_id();
    for path in [
        format!("/tasks/{id}"),
        format!("/tasks/{id}/result"),
        format!("/director/reports/tasks/{id}"),
    ] {
        let (status, body) = app.call("GET", &path, Some(OTHER), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        let (status, _) = app.call("GET", &path, None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _) = app.cancel(id, OTHER).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = app.get_task(id, DEMO).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "pending");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn long_poll_answers_when_the_task_changes() {
    let app = TestApp::builder().seed_demo().spawn().await;
    let id = app.assign(json!({"organizerId":"org_demo","eventId":"ev_demo","type":"prepaid","tickets":1,"price":1})).await.task_id();
    let poll = async {
        let started = tokio::time::Instant::now();
        let (status, body) = app
            .call("GET", &format!("/tasks/{id}?wait=30"), Some(DEMO), None)
            .await;
        (status, body, started.elapsed())
    };
    // The worker starts while the long-poll waits.
    let start_worker = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        app.start_worker(&[queue::ASSIGNMENTS])
    };
    let ((status, body, waited), worker) = tokio::join!(poll, start_worker);
    assert_eq!(status, StatusCode::OK);
    assert_ne!(
        body["status"], "pending",
        "the long-poll returned on a change: {body}"
    );
    assert!(
        waited < Duration::from_secs(30),
        "returned before its deadline"
    );
    app.wait_finished(id, WAIT).await;
    worker.stop().await;
}
