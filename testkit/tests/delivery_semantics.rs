//! At-least-once transport, exactly-once effects: duplicates and races change the ledger
//! once.

use std::{sync::Arc, time::Duration};

use engine::{runner::Runner, slots::Slots, transport::Envelope, TaskStatus};
use jobs::kinds::assignment;
use testkit::{fixtures::*, *};
use tokio::sync::Notify;

fn runner(app: &TestApp, name: &str) -> Arc<Runner<jobs::Services>> {
    let shared = Arc::new(jobs::Services::runtime(
        app.pool.clone(),
        app.config.clone(),
        app.redis.clone(),
    ));
    Runner::start(
        shared,
        Arc::new(jobs::kinds::registry().unwrap()),
        name.into(),
        Arc::new(Notify::new()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_message_delivered_twice_changes_the_ledger_once() {
    let app = TestApp::spawn().await;
    app.seed_demo().await;
    let id = enqueue(
        &app,
        &engine::KindSpec::of::<jobs::kinds::assignment::Assignment>(),
        assignment_params("ev_demo", 10, 250),
    )
    .await;
    let envelope = Envelope::new(id, assignment::NAME);
    let r = runner(&app, "w1");
    let slots = Slots::new(4);
    r.handle(envelope.clone(), &slots).await;
    r.handle(envelope.clone(), &slots).await;
    let rec = app.task(id).await;
    assert_eq!(rec.status(), TaskStatus::Completed);
    assert_eq!(rec.attempts, 1, "the duplicate was skipped at claim");
    assert_eq!(ledger_rows_for(&app, id).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_workers_racing_for_one_task_change_the_ledger_once() {
    let app = TestApp::spawn().await;
    app.seed_demo().await;
    let (a, b, c) = (runner(&app, "wa"), runner(&app, "wb"), runner(&app, "wc"));
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(
            enqueue(
                &app,
                &engine::KindSpec::of::<jobs::kinds::assignment::Assignment>(),
                assignment_params("ev_premium", 3, 199),
            )
            .await,
        );
    }
    // Every task delivered to three workers at once.
    let slots = Slots::new(64);
    let mut races = Vec::new();
    for id in &ids {
        let envelope = Envelope::new(*id, assignment::NAME);
        for r in [&a, &b, &c] {
            let r = (*r).clone();
            let e = envelope.clone();
            let slots = slots.clone();
            races.push(tokio::spawn(async move { r.handle(e, &slots).await }));
        }
    }
    for race in races {
        race.await.unwrap();
    }
    for id in &ids {
        let rec = app.wait_finished(*id, Duration::from_secs(10)).await;
        assert_eq!(rec.status(), TaskStatus::Completed);
        assert_eq!(rec.attempts, 1);
        assert_eq!(ledger_rows_for(&app, *id).await, 1);
    }
    let (tickets, equivalent, assigned): (i64, i64, i64) = sqlx::query_as(
        "SELECT tickets, tickets_equivalent, assigned_cents FROM organizer_balances WHERE organizer_id = 'org_demo'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((tickets, equivalent, assigned), (60, 120, 20 * 3 * 199));
}

/// A completion effect (how a delivery becomes `sent`) is applied only for the tasks its
/// batched statement actually completed: an attempt that lost its task changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_effects_apply_only_to_tasks_the_batch_completed() {
    use engine::{context::Effect, store};
    let app = TestApp::spawn().await;
    sqlx::query("CREATE TABLE effect_probe (id uuid PRIMARY KEY, arg text NOT NULL)")
        .execute(&app.pool)
        .await
        .unwrap();
    let spec = engine::KindSpec::of::<jobs::kinds::noop::Noop>();
    let a = enqueue(&app, &spec, serde_json::json!({})).await;
    let b = enqueue(&app, &spec, serde_json::json!({})).await;
    let claimed = store::claim(&app.pool, &[a, b], "probe", Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    let effect = |arg: &str| {
        Some(Effect {
            sql: "INSERT INTO effect_probe (id, arg) SELECT e.id, e.arg FROM {done} e",
            arg: arg.into(),
        })
    };
    let done = store::complete_many(
        &app.pool,
        &[
            (a, 1, serde_json::json!({"ok": true}), effect("for-a")),
            // Attempt 7 does not own b (its attempt is 1): not completed, no effect.
            (b, 7, serde_json::json!({"ok": true}), effect("for-b")),
        ],
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert_eq!(done, vec![a]);
    let rows: Vec<(uuid::Uuid, String)> = sqlx::query_as("SELECT id, arg FROM effect_probe")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(rows, vec![(a, "for-a".to_string())]);
    assert_eq!(app.task(b).await.status(), TaskStatus::Running);
}
