//! Redis is transport only: losing it (down, or its data flushed) loses no task. These tests
//! run a private `redis-server` so stopping it disturbs nobody else.

use std::time::Duration;

use axum::http::StatusCode;
use engine::TaskStatus;
use jobs::queues as queue;
use serde_json::json;
use testkit::{
    fixtures::{assignment_params, enqueue, ledger_rows_for, transport},
    PrivateRedis, TestApp,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_api_accepts_while_redis_is_down_and_every_task_completes_once_after() {
    let mut redis = PrivateRedis::start().await;
    let app = TestApp::builder()
        .redis_url(redis.url())
        .core(|c| c.queue_repush_after = Duration::from_secs(1))
        .seed_demo()
        .workers(&[queue::ASSIGNMENTS])
        .spawn()
        .await;

    redis.stop();
    let mut ids = Vec::new();
    for i in 0..5 {
        let (status, body) = app.assign(json!({"organizerId":"org_demo","eventId":"ev_demo","type":"prepaid","tickets":i + 1,"price":1}))
        .await;
        assert_eq!(
            status,
            StatusCode::ACCEPTED,
            "accepted while redis is down: {body}"
        );
        ids.push(body["taskId"].as_str().unwrap().parse().unwrap());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for id in &ids {
        assert_eq!(app.task(*id).await.status(), TaskStatus::Pending);
    }

    redis.restart().await;
    for id in &ids {
        let rec = app.wait_finished(*id, Duration::from_secs(60)).await;
        assert_eq!(rec.status(), TaskStatus::Completed, "{:?}", rec.error);
        assert_eq!(ledger_rows_for(&app, *id).await, 1);
    }
    let tickets: i64 = sqlx::query_scalar(
        "SELECT tickets FROM organizer_balances WHERE organizer_id = 'org_demo'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(tickets, 1 + 2 + 3 + 4 + 5);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pushed_tasks_survive_a_flush_of_redis() {
    let redis = PrivateRedis::start().await;
    let app = TestApp::builder()
        .redis_url(redis.url())
        .core(|c| c.queue_repush_after = Duration::from_secs(1))
        .seed_demo()
        .spawn()
        .await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(
            enqueue(
                &app,
                &engine::KindSpec::of::<jobs::kinds::assignment::Assignment>(),
                assignment_params("ev_demo", 1, 100),
            )
            .await,
        );
    }
    let waiting = transport(&app).depth(queue::ASSIGNMENTS).await.unwrap();
    assert_eq!(waiting, 20, "all messages were pushed");
    let mut conn = app.redis.clone();
    let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();

    app.add_worker(&[queue::ASSIGNMENTS]);
    for id in &ids {
        let rec = app.wait_finished(*id, Duration::from_secs(30)).await;
        assert_eq!(rec.status(), TaskStatus::Completed);
        assert_eq!(rec.attempts, 1);
        assert_eq!(ledger_rows_for(&app, *id).await, 1);
    }
    app.stop().await;
}
