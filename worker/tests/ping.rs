//! `POST /admin/ping`: the smallest kind, end to end (api → queue → worker → result).

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::*;
use engine::TaskStatus;
use jobs::{queues, testing::TestEnv};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_is_answered_by_a_maintenance_worker_that_reaches_postgres_and_redis() {
    let env = TestEnv::new().await;
    let app = api(&env);

    let (status, body) = call(&app, "POST", "/admin/ping", Some(DEMO), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    let (status, body) = call(&app, "POST", "/admin/ping", Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["taskId"].as_str().unwrap().parse().unwrap();

    let worker = RunningWorker::start(
        worker_config(&env, &[queues::MAINTENANCE]),
        jobs::kinds::registry().unwrap(),
    );
    let rec = env.wait_finished(id, Duration::from_secs(20)).await;
    worker.stop().await;

    assert_eq!(rec.kind, "ping");
    assert_eq!(rec.queue, queues::MAINTENANCE);
    assert_eq!(rec.status(), TaskStatus::Completed, "{:?}", rec.error);
    let result = rec.result.unwrap();
    assert_eq!(result["pong"], true, "{result}");
    assert_eq!(result["attempt"], 1);
    for field in ["postgresMs", "redisMs"] {
        let ms = result[field].as_f64().unwrap_or(-1.0);
        assert!((0.0..10_000.0).contains(&ms), "{field} = {ms}");
    }
}
