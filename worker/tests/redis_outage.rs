//! Redis is transport only: losing it (down, or its data flushed) loses no task. These tests
//! run a private `redis-server` so stopping it disturbs nobody else.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::*;
use engine::TaskStatus;
use jobs::{queues as queue, testing::TestEnv};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_api_accepts_while_redis_is_down_and_every_task_completes_once_after() {
    let mut redis = PrivateRedis::start().await;
    let mut env = TestEnv::with_redis(&redis.url()).await;
    env.config.queue_repush_after = Duration::from_secs(1);
    env.seed_demo().await;
    let app = api(&env);
    let worker = RunningWorker::start(worker_config(&env, &[queue::ASSIGNMENTS]), test_registry());

    redis.stop();
    let mut ids = Vec::new();
    for i in 0..5 {
        let (status, body) = call(
            &app,
            "POST",
            "/director/assign",
            Some(DEMO),
            Some(json!({"organizerId":"org_demo","eventId":"ev_demo","type":"prepaid","tickets":i + 1,"price":1})),
        )
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
        assert_eq!(env.task(*id).await.status(), TaskStatus::Pending);
    }

    redis.restart().await;
    for id in &ids {
        let rec = env.wait_finished(*id, Duration::from_secs(60)).await;
        assert_eq!(rec.status(), TaskStatus::Completed, "{:?}", rec.error);
        assert_eq!(ledger_rows_for(&env, *id).await, 1);
    }
    let tickets: i64 = sqlx::query_scalar(
        "SELECT tickets FROM organizer_balances WHERE organizer_id = 'org_demo'",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(tickets, 1 + 2 + 3 + 4 + 5);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pushed_tasks_survive_a_flush_of_redis() {
    let redis = PrivateRedis::start().await;
    let mut env = TestEnv::with_redis(&redis.url()).await;
    env.config.queue_repush_after = Duration::from_secs(1);
    env.seed_demo().await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(
            enqueue(
                &env,
                &engine::KindSpec::of::<jobs::kinds::assignment::Assignment>(),
                assignment_params("ev_demo", 1, 100),
            )
            .await,
        );
    }
    let waiting = transport(&env).depth(queue::ASSIGNMENTS).await.unwrap();
    assert_eq!(waiting, 20, "all messages were pushed");
    let mut conn = env.redis.clone();
    let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();

    let worker = RunningWorker::start(worker_config(&env, &[queue::ASSIGNMENTS]), test_registry());
    for id in &ids {
        let rec = env.wait_finished(*id, Duration::from_secs(30)).await;
        assert_eq!(rec.status(), TaskStatus::Completed);
        assert_eq!(rec.attempts, 1);
        assert_eq!(ledger_rows_for(&env, *id).await, 1);
    }
    worker.stop().await;
}
