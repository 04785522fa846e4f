//! Claims commit without waiting for the WAL flush (`engine::db::bookkeeping_pool`). This
//! shows what that costs when Postgres itself crashes: a claim lost with the crash only
//! means the task is claimed again; its attempt's effects were never committed, so the
//! ledger still moves exactly once. Completions stay synchronous: one that a client saw
//! survives the crash.

use std::time::Duration;

use engine::TaskStatus;
use jobs::queues as queue;
use testkit::{fixtures::*, *};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_claim_lost_in_a_postgres_crash_is_claimed_again_and_the_ledger_moves_once() {
    let Some(pg) = PrivatePostgres::start().await else {
        return skipped("the Postgres server tools (initdb, pg_ctl) are not installed");
    };
    let app = TestApp::builder()
        .database_url(pg.url("taquilla_crash"))
        .seed_demo()
        .spawn()
        .await;
    let spec = engine::KindSpec::of::<jobs::kinds::assignment::Assignment>();

    // A completion before the crash: synchronous, so it must survive it.
    app.add_worker(&[queue::ASSIGNMENTS]);
    let before = enqueue(&app, &spec, assignment_params("ev_demo", 10, 100)).await;
    let rec = app.wait_finished(before, Duration::from_secs(20)).await;
    assert_eq!(rec.status(), TaskStatus::Completed, "{:?}", rec.error);

    // Hold the organizer's balance row so the next attempt stops inside its transaction,
    // after its claim committed.
    let mut blocker = app.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM organizer_balances WHERE organizer_id = 'org_demo' FOR UPDATE")
        .execute(&mut *blocker)
        .await
        .unwrap();
    pg.stall_wal_writer(&app.pool).await;
    let id = enqueue(&app, &spec, assignment_params("ev_demo", 100, 350)).await;
    wait_until_blocked_in(
        &app.pool,
        "organizer_balances",
        "the attempt never reached the ledger write",
    )
    .await;
    let rec = app.task(id).await;
    assert_eq!((rec.status(), rec.attempts), (TaskStatus::Running, 1));

    pg.crash().await;
    drop(blocker);
    pg.restart().await;

    // Crash recovery replayed every flushed commit: the earlier completion is there, the
    // claim (never flushed) is not.
    let rec = reread(&app, before).await;
    assert_eq!(rec.status(), TaskStatus::Completed, "a completion survives");
    let rec = reread(&app, id).await;
    assert_eq!(
        (rec.status(), rec.attempts),
        (TaskStatus::Pending, 0),
        "the claim was lost with the crash"
    );

    // The worker, still running, gets its connections back. The stopped attempt's
    // transaction died with the crash; retried, it finds the task no longer its own (had it
    // survived, its fence would refuse it) and hands it to the relay at once: the task is
    // claimed again well before QUEUE_REPUSH_AFTER_SECONDS (30 s here) would push it.
    let repush_after = app.config.queue_repush_after;
    assert_eq!(repush_after, Duration::from_secs(30));
    let rec = app
        .wait_finished(id, repush_after - Duration::from_secs(10))
        .await;
    assert_eq!(rec.status(), TaskStatus::Completed, "{:?}", rec.error);
    assert_eq!(rec.attempts, 1, "the lost claim is not counted");
    assert_eq!(ledger_rows_for(&app, id).await, 1);
    assert_eq!(ledger_rows_for(&app, before).await, 1);
    let assigned: i64 = sqlx::query_scalar(
        "SELECT assigned_cents FROM organizer_balances WHERE organizer_id = 'org_demo'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(assigned, 1_000 + 35_000);
    app.stop().await;
}

/// The task as the restarted server has it (the pool's connections died with the crash).
async fn reread(app: &TestApp, id: uuid::Uuid) -> engine::TaskRecord {
    for _ in 0..100 {
        if let Ok(Some(rec)) = engine::store::get(&app.pool, id, None).await {
            return rec;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("task {id} unreadable after the restart");
}
