//! Pausing a queue (issue 14's engine capability): a paused queue keeps accepting tasks,
//! none of them starts — not relayed, not fetched — across a worker restart, and they run
//! once it is resumed; the state shows in `/admin/queues` and `/metrics`.

use std::time::Duration;

use axum::http::StatusCode;
use engine::TaskStatus;
use jobs::queues;
use testkit::{Accepted, TestApp, ADMIN};
use uuid::Uuid;

const OPERATOR: &str = "operator-token-for-pause";

async fn status_of(app: &TestApp, id: Uuid) -> TaskStatus {
    app.task(id).await.status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_queue_accepts_and_waits_across_a_restart_then_runs_when_resumed() {
    let app = TestApp::builder()
        .tokens(format!(
            "{ADMIN}:ops:admin,{OPERATOR}:watch:operator,demo-token:demo"
        ))
        .spawn()
        .await;
    let worker = app.start_worker(&[queues::MAINTENANCE]);

    let (status, body) = app
        .call(
            "POST",
            "/admin/queues/maintenance/pause",
            Some(OPERATOR),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "operators only look: {body}");
    let (status, body) = app
        .call("POST", "/admin/queues/nope/pause", Some(ADMIN), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = app
        .call("POST", "/admin/queues/maintenance/pause", Some(ADMIN), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["paused"].as_bool(), body["changed"].as_bool()),
        (Some(true), Some(true))
    );
    let (_, again) = app
        .call("POST", "/admin/queues/maintenance/pause", Some(ADMIN), None)
        .await;
    assert_eq!(again["changed"], false);
    // The workers see it within their poll (200 ms in tests).
    tokio::time::sleep(Duration::from_millis(500)).await;

    let first = app.ping(ADMIN).await.task_id();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        status_of(&app, first).await,
        TaskStatus::Pending,
        "accepted, not started"
    );
    let (_, listed) = app.call("GET", "/admin/queues", Some(OPERATOR), None).await;
    let maintenance = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == queues::MAINTENANCE)
        .unwrap()
        .clone();
    assert_eq!(
        (
            maintenance["paused"].as_bool(),
            maintenance["pausedBy"].as_str()
        ),
        (Some(true), Some("ops")),
        "{maintenance}"
    );
    let req = axum::http::Request::get("/metrics")
        .header("authorization", format!("Bearer {OPERATOR}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let bytes = axum::body::to_bytes(app.request(req).await.into_body(), 1 << 22)
        .await
        .unwrap();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(
        text.contains("taquilla_queue_paused{queue=\"maintenance\"} 1")
            && text.contains("taquilla_queue_paused{queue=\"assignments\"} 0"),
        "{text}"
    );

    // A restarted worker finds the queue paused.
    worker.stop().await;
    let worker = app.start_worker(&[queues::MAINTENANCE]);
    let second = app.ping(ADMIN).await.task_id();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(status_of(&app, first).await, TaskStatus::Pending);
    assert_eq!(status_of(&app, second).await, TaskStatus::Pending);

    let (status, body) = app
        .call(
            "POST",
            "/admin/queues/maintenance/resume",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["changed"], true);
    app.wait_for(first, TaskStatus::Completed).await;
    app.wait_for(second, TaskStatus::Completed).await;
    worker.stop().await;
    app.stop().await;
}
