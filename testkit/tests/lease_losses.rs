//! Lost leases are counted apart from handler failures (issue 10, §3): a task that kills
//! its worker process still ends `dead`, while the tasks that were only running beside it
//! when the process died are forgiven, run alone after a few losses, and complete.
//! Real worker processes, really aborted.

use std::{process::Stdio, time::Duration};

use engine::TaskStatus;
use serde_json::json;
use testkit::{fixtures::enqueue, TestApp};
use tokio::process::{Child, Command};
use uuid::Uuid;

fn spawn_worker(app: &TestApp) -> Child {
    Command::new(testkit::binary("worker"))
        .env("DATABASE_URL", &app.config.database_url)
        .env("REDIS_URL", &app.redis_url)
        .env("REDIS_PREFIX", app.keys.prefix())
        .env("WORKER_QUEUES", "maintenance")
        .env("WORKER_CONCURRENCY", "8")
        .env("TASK_LEASE_SECONDS", "1")
        .env("QUEUE_REPUSH_AFTER_SECONDS", "1")
        .env("RELAY_INTERVAL_MS", "100")
        .env("WORKER_HEARTBEAT_SECONDS", "1")
        .env("NOOP_ALLOW_CRASH", "1")
        .env("WORKER_SCHEDULES", "false")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("worker binary")
}

async fn status(app: &TestApp, id: Uuid) -> (TaskStatus, i32, i32, bool) {
    let (status, attempts, losses, isolate): (String, i32, i32, bool) =
        sqlx::query_as("SELECT status, attempts, lease_losses, isolate FROM tasks WHERE id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    (
        TaskStatus::parse(&status).unwrap(),
        attempts,
        losses,
        isolate,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_task_that_kills_its_worker_dies_and_the_tasks_beside_it_complete() {
    let app = TestApp::spawn().await;
    let spec = engine::KindSpec::of::<jobs::kinds::noop::Noop>();
    // Innocent tasks that stay in flight long enough to share every crash.
    let mut innocent = Vec::new();
    for i in 0..4 {
        innocent.push(enqueue(&app, &spec, json!({ "sleepMs": 1500, "n": i })).await);
    }
    let poison = enqueue(&app, &spec, json!({ "crash": true })).await;

    // One worker process, restarted whenever it dies, until every task has ended.
    let mut worker = spawn_worker(&app);
    let mut restarts = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(Some(_)) = worker.try_wait() {
            restarts += 1;
            worker = spawn_worker(&app);
        }
        let mut all_done = true;
        for id in innocent.iter().chain([&poison]) {
            all_done &= status(&app, *id).await.0.is_terminal();
        }
        if all_done {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "tasks still running after 90 s ({restarts} restarts)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = worker.start_kill();

    for id in innocent {
        let (st, attempts, losses, _) = status(&app, id).await;
        assert_eq!(
            st,
            TaskStatus::Completed,
            "task {id} only shared a worker with the crash (attempts {attempts}, forgiven {losses})"
        );
    }
    let (st, attempts, losses, isolate) = status(&app, poison).await;
    assert_eq!(
        st,
        TaskStatus::Dead,
        "a task that aborts its worker is dead-lettered"
    );
    assert!(isolate, "it was run alone before being called poison");
    assert_eq!(
        attempts - losses,
        spec.max_attempts,
        "its budget of solitary runs was used up (attempts {attempts}, forgiven {losses})"
    );
    let rec: (Option<String>,) = sqlx::query_as("SELECT error->>'code' FROM tasks WHERE id = $1")
        .bind(poison)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(rec.0.as_deref(), Some("worker_lost"));
    assert!(restarts >= spec.max_attempts, "{restarts} restarts");
}

/// The run at a bounded size (the full one: scripts/bench/chaos.sh): three worker
/// processes, one SIGKILLed every second while a backlog of innocent tasks drains; none
/// may end dead.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn innocent_tasks_survive_workers_killed_every_second() {
    const TASKS: i64 = 1200;
    let app = TestApp::spawn().await;
    sqlx::query(
        "INSERT INTO tasks (id, kind, queue, status, params, max_attempts, requester, run_at, expires_at) \
         SELECT gen_random_uuid(), 'noop', 'maintenance', 'pending', \
                jsonb_build_object('sleepMs', 200, 'n', g), 3, 'demo', now(), now() + interval '1 day' \
         FROM generate_series(1, $1) g",
    )
    .bind(TASKS)
    .execute(&app.pool)
    .await
    .unwrap();
    let mut workers: Vec<Child> = (0..3).map(|_| spawn_worker(&app)).collect();
    let mut kills = 0;
    let mut victim = 0;
    let mut last_kill = tokio::time::Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let left: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM tasks WHERE status NOT IN ('completed', 'failed', 'dead', 'cancelled')",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap();
        if left == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{left} tasks left after 120 s ({kills} kills)"
        );
        for w in workers.iter_mut() {
            if let Ok(Some(_)) = w.try_wait() {
                *w = spawn_worker(&app);
            }
        }
        if last_kill.elapsed() >= Duration::from_secs(1) {
            let _ = workers[victim].start_kill(); // SIGKILL
            kills += 1;
            victim = (victim + 1) % workers.len();
            last_kill = tokio::time::Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for w in workers.iter_mut() {
        let _ = w.start_kill();
    }
    let by_status: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT status, count(*), coalesce(sum(lease_losses), 0)::int8 FROM tasks GROUP BY status",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        by_status
            .iter()
            .map(|(s, n, _)| (s.as_str(), *n))
            .collect::<Vec<_>>(),
        vec![("completed", TASKS)],
        "{by_status:?} after {kills} kills"
    );
    assert!(kills >= 2, "the run must see workers die ({kills} kills)");
}
