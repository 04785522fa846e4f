//! The harness itself: `drain` runs every queue until nothing is left and fails naming what
//! is; `wait_for` fails when the task ends otherwise and still answers without Redis; the
//! typed helpers reach their routes; `ApiConfig::builder` has the documented defaults.

use std::{panic::AssertUnwindSafe, time::Duration};

use axum::http::StatusCode;
use engine::TaskStatus;
use futures::FutureExt;
use jobs::queues as queue;
use serde_json::json;
use testkit::{
    fixtures::enqueue,
    kinds::{flaky, permanent},
    Accepted, PrivateRedis, TestApp, ADMIN, DEMO,
};

/// The message of a panic caught from `future`; fails if it did not panic.
async fn panic_message(future: impl std::future::Future<Output = ()>) -> String {
    let payload = AssertUnwindSafe(future)
        .catch_unwind()
        .await
        .expect_err("expected a panic");
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drain_runs_every_queue_until_nothing_is_left() {
    let app = TestApp::builder().seed_demo().spawn().await;
    let assigned = app
        .assign(json!({"organizerId":"org_demo","eventId":"ev_demo","type":"prepaid","tickets":2,"price":1}))
        .await
        .task_id();
    let retried = enqueue(&app, &flaky(), json!({})).await;
    assert!(!app.has_workers(), "no worker before the drain");

    app.drain().await;

    assert_eq!(app.task(assigned).await.status(), TaskStatus::Completed);
    let rec = app.task(retried).await;
    assert_eq!(rec.status(), TaskStatus::Completed, "{:?}", rec.error);
    assert_eq!(rec.attempts, 3, "drained through its two retries");
    assert!(!app.has_workers(), "the drain's own workers are gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drain_fails_listing_the_tasks_left() {
    let app = TestApp::builder()
        .workers(&[queue::MAINTENANCE])
        .spawn()
        .await;
    let done = enqueue(
        &app,
        &engine::KindSpec::of::<jobs::kinds::noop::Noop>(),
        json!({}),
    )
    .await;
    // Due in an hour: no worker may run it within the drain.
    let later = enqueue(
        &app,
        &engine::KindSpec::of::<jobs::kinds::noop::Noop>(),
        json!({}),
    )
    .await;
    sqlx::query("UPDATE tasks SET run_at = now() + interval '1 hour' WHERE id = $1")
        .bind(later)
        .execute(&app.pool)
        .await
        .unwrap();

    let message = panic_message(app.drain_within(Duration::from_secs(3))).await;
    assert!(message.contains("1 task(s) left"), "{message}");
    assert!(message.contains(&later.to_string()), "{message}");
    assert!(message.contains("noop pending"), "{message}");
    assert!(!message.contains(&done.to_string()), "{message}");
    assert_eq!(app.task(done).await.status(), TaskStatus::Completed);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wait_for_fails_when_the_task_ends_in_another_status() {
    let app = TestApp::builder()
        .workers(&[queue::MAINTENANCE])
        .spawn()
        .await;
    let id = enqueue(&app, &permanent(), json!({})).await;
    let message = panic_message(async {
        app.wait_for(id, TaskStatus::Completed).await;
    })
    .await;
    assert!(message.contains("ended failed"), "{message}");
    assert_eq!(
        app.wait_for(id, TaskStatus::Failed).await.error.unwrap()["code"],
        "invalid_input"
    );
    app.stop().await;
}

/// Without Redis no notification comes: the wait still sees a change written to Postgres.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wait_for_sees_changes_when_redis_is_down() {
    let mut redis = PrivateRedis::start().await;
    let app = TestApp::builder().redis_url(redis.url()).spawn().await;
    let id = enqueue(
        &app,
        &engine::KindSpec::of::<jobs::kinds::noop::Noop>(),
        json!({}),
    )
    .await;
    redis.stop();
    let pool = app.pool.clone();
    let writer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        sqlx::query("UPDATE tasks SET status = 'cancelled', finished_at = now() WHERE id = $1")
            .bind(id)
            .execute(&pool)
            .await
            .unwrap();
    });
    let rec = app
        .wait_for_within(id, TaskStatus::Cancelled, Duration::from_secs(10))
        .await;
    assert_eq!(rec.status(), TaskStatus::Cancelled);
    writer.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn typed_helpers_reach_their_routes() {
    let app = TestApp::builder().seed_demo().spawn().await;
    let assigned = app
        .assign(json!({"organizerId":"org_demo","eventId":"ev_demo","type":"prepaid","tickets":1,"price":1}))
        .await
        .task_id();
    let (status, body) = app.get_task(assigned, DEMO).await;
    assert_eq!(
        (status, body["status"].clone()),
        (StatusCode::OK, json!("pending"))
    );
    let (status, body) = app.task_result(assigned, DEMO).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = app.cancel(assigned, DEMO).await;
    assert_eq!(
        (status, body["status"].clone()),
        (StatusCode::OK, json!("cancelled"))
    );

    let paid = app
        .payment(json!({"organizerId":"org_demo","amountCents":250}))
        .await
        .task_id();
    let (status, body) = app.ledger("org_demo", "pageSize=5").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .export(json!({"report":"debt-aging","format":"csv"}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, body) = app
        .send("ev_demo", "nobody", json!({"channel":"whatsapp"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = app
        .bulk(
            "ev_demo",
            json!({"channel":"whatsapp","guestIds":["nobody"]}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    let (status, body) = app.admin_queues().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app.admin_workers().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app.admin_tasks("status=cancelled").await;
    assert_eq!(
        (status, body["meta"]["total"].clone()),
        (StatusCode::OK, json!(1))
    );
    let (status, _) = app.admin_retry(uuid::Uuid::now_v7()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = app.admin_retry_all("status=dead").await;
    assert_eq!(
        (status, body["redriven"].clone()),
        (StatusCode::ACCEPTED, json!(0))
    );
    let (status, _) = app.admin_delete(paid).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.get_task(paid, DEMO).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "deleted");
    let (status, _) = app.call("GET", "/admin/queues", Some(DEMO), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{ADMIN} only");
    let (status, body) = app.webhook(&[], "{}").await;
    assert_eq!(status, StatusCode::OK, "unsigned in development: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_config_builder_has_the_documented_defaults() {
    let app = TestApp::spawn().await;
    let config = api::ApiConfig::builder(app.config.clone()).build();
    assert_eq!(config.body_limit, 64 * 1024);
    assert_eq!(config.long_poll_max, 60);
    assert!(config.tokens.lookup(DEMO).is_none(), "no token until told");
    assert!(config.security.metrics_token.is_none());
    assert_eq!(config.security.metrics_cache_ttl, Duration::from_secs(5));

    let config = api::ApiConfig::builder(app.config.clone())
        .bind("127.0.0.1:9999".parse().unwrap())
        .tokens(api::auth::Tokens::parse("demo-token:demo").unwrap())
        .body_limit(1024)
        .long_poll_max(5)
        .metrics_token(Some("m".into()))
        .metrics_cache_ttl(Duration::from_secs(1))
        .build();
    assert_eq!(config.bind.port(), 9999);
    assert_eq!(config.tokens.lookup(DEMO).unwrap().requester, "demo");
    assert_eq!((config.body_limit, config.long_poll_max), (1024, 5));
    assert_eq!(config.security.metrics_token.as_deref(), Some("m"));
    assert_eq!(config.security.metrics_cache_ttl, Duration::from_secs(1));
}
