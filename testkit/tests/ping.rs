//! `POST /admin/ping`: the smallest kind, end to end (api → queue → worker → result).

use axum::http::StatusCode;
use engine::TaskStatus;
use jobs::queues;
use testkit::{Accepted, TestApp, ADMIN, DEMO};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_is_answered_by_a_maintenance_worker_that_reaches_postgres_and_redis() {
    let app = TestApp::builder()
        .workers(&[queues::MAINTENANCE])
        .spawn()
        .await;

    let (status, body) = app.ping(DEMO).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    let id = app.ping(ADMIN).await.task_id();
    let rec = app.wait_for(id, TaskStatus::Completed).await;
    app.stop().await;

    assert_eq!(rec.kind, "ping");
    assert_eq!(rec.queue, queues::MAINTENANCE);
    let result = rec.result.unwrap();
    assert_eq!(result["pong"], true, "{result}");
    assert_eq!(result["attempt"], 1);
    for field in ["postgresMs", "redisMs"] {
        let ms = result[field].as_f64().unwrap_or(-1.0);
        assert!((0.0..10_000.0).contains(&ms), "{field} = {ms}");
    }
}
