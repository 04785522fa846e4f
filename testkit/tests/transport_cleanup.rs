//! What a drained queue leaves in Redis: nothing, once the janitor swept. Workers do not
//! acknowledge messages (the claim decides what runs); the janitor drops what was fetched.

use std::time::Duration;

use engine::{transport::MessageQueue, KindSpec, TaskStatus};
use jobs::queues as queue;
use serde_json::json;
use testkit::{fixtures::enqueue, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_drained_queue_leaves_no_message_in_redis() {
    let app = TestApp::builder()
        .workers(&[queue::MAINTENANCE])
        .spawn()
        .await;
    let noop = KindSpec::of::<jobs::kinds::noop::Noop>();
    let mut ids = Vec::new();
    for n in 0..50 {
        ids.push(enqueue(&app, &noop, json!({ "n": n })).await);
    }
    for id in &ids {
        let rec = app.wait_finished(*id, Duration::from_secs(20)).await;
        assert_eq!(rec.status(), TaskStatus::Completed);
    }
    let cfg = MessageQueue::apalis_config(&app.keys, queue::MAINTENANCE);
    let mut redis = app.redis.clone();
    let done: usize = redis::cmd("SCARD")
        .arg(cfg.done_jobs_set())
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(done, 0, "a message was acknowledged");

    engine::transport::janitor::sweep(&mut redis, &app.keys, queue::MAINTENANCE)
        .await
        .unwrap();

    let data: usize = redis::cmd("HLEN")
        .arg(cfg.job_data_hash())
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(data, 0, "message bodies left in {}", cfg.job_data_hash());
    let meta: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", cfg.job_meta_hash()))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(meta.is_empty(), "message meta left: {meta:?}");
    let workers: Vec<String> = redis::cmd("ZRANGE")
        .arg(cfg.workers_set())
        .arg(0)
        .arg(-1)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(!workers.is_empty(), "the worker registered with apalis");
    for worker in workers {
        let set = format!("{}:{worker}", cfg.inflight_jobs_set());
        let left: usize = redis::cmd("SCARD")
            .arg(&set)
            .query_async(&mut redis)
            .await
            .unwrap();
        assert_eq!(left, 0, "{set} still holds fetched messages");
    }
    app.stop().await;
}
