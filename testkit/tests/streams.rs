//! Event streams and long-polls are bounded (issue 10, §3): per requester at once (429 with
//! Retry-After), in lifetime, and a Redis that stops answering never stalls a waiter.

use std::time::Duration;

use axum::{
    body::Body,
    http::{Request, Response, StatusCode},
};
use serde_json::json;
use testkit::{fixtures::enqueue, PrivateRedis, TestApp, DEMO, OTHER};
use uuid::Uuid;

async fn open(app: &TestApp, path: &str, token: &str) -> Response<Body> {
    let req = Request::builder()
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    app.request(req).await
}

/// A task nobody runs (no worker in these tests): it stays pending, its streams stay open.
async fn pending_task(app: &TestApp) -> Uuid {
    enqueue(
        app,
        &engine::KindSpec::of::<jobs::kinds::noop::Noop>(),
        json!({}),
    )
    .await
}

/// The api with the event hub's `limits`.
async fn with_limits(limits: api::events::Limits) -> TestApp {
    TestApp::builder()
        .state(move |state, env| {
            state.hub =
                api::events::EventHub::start_with(env.redis_url.clone(), env.keys.clone(), limits)
        })
        .spawn()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_requester_holds_a_bounded_number_of_streams_and_long_polls() {
    let app = with_limits(api::events::Limits {
        per_requester: 2,
        ..Default::default()
    })
    .await;
    let id = pending_task(&app).await;
    let first = open(&app, &format!("/tasks/{id}/events"), DEMO).await;
    assert_eq!(first.status(), StatusCode::OK);
    let second = open(&app, &format!("/tasks/{id}/events"), DEMO).await;
    assert_eq!(second.status(), StatusCode::OK);

    // A third stream, or a long-poll, is refused while both are open.
    for path in [format!("/tasks/{id}/events"), format!("/tasks/{id}?wait=5")] {
        let refused = open(&app, &path, DEMO).await;
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS, "{path}");
        let retry_after = refused.headers().get("retry-after").cloned();
        let body = axum::body::to_bytes(refused.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "too_many_waiters", "{body}");
        assert!(body["requestId"].is_string());
        assert_eq!(retry_after.unwrap(), "5");
    }
    // A plain read is not a waiter, and another requester has places of its own.
    let (status, _) = app.get_task(id, DEMO).await;
    assert_eq!(status, StatusCode::OK);
    let other = enqueue_as_other(&app).await;
    let theirs = open(&app, &format!("/tasks/{other}/events"), OTHER).await;
    assert_eq!(theirs.status(), StatusCode::OK);

    // Closing a stream frees its place.
    drop(first);
    let again = open(&app, &format!("/tasks/{id}/events"), DEMO).await;
    assert_eq!(again.status(), StatusCode::OK);
    drop((second, again, theirs));
}

async fn enqueue_as_other(app: &TestApp) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO tasks (id, kind, queue, status, params, max_attempts, requester, run_at, expires_at) \
         VALUES ($1, 'noop', 'maintenance', 'pending', '{}', 3, 'other', now(), now() + interval '1 day')",
    )
    .bind(id)
    .execute(&app.pool)
    .await
    .unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_stream_ends_after_its_lifetime() {
    let app = with_limits(api::events::Limits {
        stream_lifetime: Duration::from_secs(1),
        ..Default::default()
    })
    .await;
    let id = pending_task(&app).await;
    let resp = open(&app, &format!("/tasks/{id}/events"), DEMO).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body = tokio::time::timeout(
        Duration::from_secs(10),
        axum::body::to_bytes(resp.into_body(), 1 << 20),
    )
    .await
    .expect("the stream ends after its lifetime although the task is still pending")
    .unwrap();
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("event: task"), "{body}");
}

/// Redis accepts the hub's connection, then stops answering (SIGSTOP): a long-poll still
/// answers after its wait instead of hanging on the subscribe.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_long_poll_answers_when_redis_stops_answering() {
    let redis = PrivateRedis::start().await;
    let hub_redis = redis.url();
    let app = TestApp::builder()
        .state(move |state, env| {
            state.hub = api::events::EventHub::start_with(
                hub_redis,
                env.keys.clone(),
                api::events::Limits {
                    subscribe_timeout: Duration::from_millis(500),
                    ..Default::default()
                },
            )
        })
        .spawn()
        .await;
    let id = pending_task(&app).await;
    // Let the hub connect, then freeze the server.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = redis.pid().unwrap().to_string();
    let stopped = std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap();
    assert!(stopped.success());
    let answered = tokio::time::timeout(
        Duration::from_secs(8),
        app.call("GET", &format!("/tasks/{id}?wait=1"), Some(DEMO), None),
    )
    .await;
    // Another waiter (a different task: a new subscribe) is not stuck behind the first.
    let second = pending_task(&app).await;
    let answered_too = tokio::time::timeout(
        Duration::from_secs(8),
        app.call("GET", &format!("/tasks/{second}?wait=1"), Some(DEMO), None),
    )
    .await;
    let _ = std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status();
    let (status, body) = answered.expect("the long-poll hung on a frozen Redis");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "pending");
    let (status, _) = answered_too.expect("the second long-poll hung");
    assert_eq!(status, StatusCode::OK);
}
