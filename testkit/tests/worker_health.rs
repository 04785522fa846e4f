//! `worker health`, the probe of docker-compose.yml and deploy/kubernetes: a running worker
//! rewrites WORKER_HEALTH_FILE every heartbeat once it reaches Postgres and Redis, and stops
//! when the worker stops, so the file goes stale.

use std::time::{Duration, Instant};

use jobs::queues as queue;
use testkit::{kinds::test_registry, *};
use worker::health::check;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_worker_keeps_its_health_file_fresh_and_ready() {
    let app = TestApp::spawn().await;
    let dir = std::env::temp_dir().join(format!("taquilla-health-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("worker.health");
    let mut cfg = app.worker_config(&[queue::MAINTENANCE]);
    cfg.health_file = Some(path.clone());
    assert!(
        check(&path, Duration::from_secs(30), false).is_err(),
        "no file before the worker runs"
    );

    let running = RunningWorker::start(cfg, test_registry());
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(why) = check(&path, Duration::from_secs(3), true) {
        assert!(Instant::now() < deadline, "not ready within 10 s: {why}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Still beating (every second, worker_config's heartbeat) well after the first write.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(check(&path, Duration::from_secs(2), true), Ok(()));

    running.stop().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stale = check(&path, Duration::from_secs(1), false).unwrap_err();
    assert!(stale.contains("last beat"), "{stale}");
    std::fs::remove_dir_all(&dir).unwrap();
}
