//! A worker process killed with SIGKILL in the middle of a task: another worker process
//! finishes the task once its lease expires, and the ledger changes exactly once.

use std::time::Duration;

use engine::TaskStatus;
use testkit::{fixtures::*, *};
use tokio::process::Child;

fn spawn_worker(app: &TestApp) -> Child {
    spawn_worker_process(app, "assignments", 2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_worker_process_loses_nothing_and_duplicates_nothing() {
    let app = TestApp::spawn().await;
    app.seed_demo().await;
    // Hold the organizer's balance row so the first attempt blocks mid-transaction.
    sqlx::query(
        "INSERT INTO organizer_balances (organizer_id, currency) VALUES ('org_demo', 'MXN')",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let mut blocker = app.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM organizer_balances WHERE organizer_id = 'org_demo' FOR UPDATE")
        .execute(&mut *blocker)
        .await
        .unwrap();

    let mut first = spawn_worker(&app);
    let id = enqueue(
        &app,
        &engine::KindSpec::of::<jobs::kinds::assignment::Assignment>(),
        assignment_params("ev_demo", 100, 350),
    )
    .await;
    app.wait_until(id, Duration::from_secs(20), |s| s == TaskStatus::Running)
        .await;
    // Wait until the attempt is really inside its transaction, blocked on our lock.
    wait_until_blocked_in(
        &app.pool,
        "organizer_balances",
        "the attempt never reached the ledger write",
    )
    .await;

    first.start_kill().unwrap(); // SIGKILL
    first.wait().await.unwrap();
    blocker.rollback().await.unwrap();

    let mut second = spawn_worker(&app);
    let rec = app.wait_finished(id, Duration::from_secs(30)).await;
    assert_eq!(rec.status(), TaskStatus::Completed, "{:?}", rec.error);
    assert_eq!(
        rec.attempts, 2,
        "the lost attempt counts, the second one completes"
    );
    assert_eq!(ledger_rows_for(&app, id).await, 1);
    let (tickets, assigned): (i64, i64) = sqlx::query_as(
        "SELECT tickets, assigned_cents FROM organizer_balances WHERE organizer_id = 'org_demo'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        (tickets, assigned),
        (100, 35_000),
        "the killed attempt wrote nothing"
    );

    // SIGTERM: a graceful stop that exits 0.
    let pid = second.id().unwrap() as i32;
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let status = tokio::time::timeout(Duration::from_secs(30), second.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "worker exits 0 on SIGTERM: {status:?}");
}
