//! The relay starts each pass where the previous one stopped (issue 15): it does not read
//! again the tasks it pushed and no worker claimed yet, and what became due behind it (a
//! lost message) is pushed by a pass from the head, at the latest a second later.

use std::time::Duration;

use jobs::queues as queue;
use testkit::{
    fixtures::{relay, transport},
    TestApp,
};
use uuid::Uuid;

/// `n` waiting tasks enqueued together (one `run_at`) with no message yet, in the order the
/// relay reads them.
async fn seed(app: &TestApp, n: i64) -> Vec<Uuid> {
    sqlx::query(
        "INSERT INTO tasks (id, kind, queue, status, params, max_attempts, requester, run_at, expires_at) \
         SELECT gen_random_uuid(), 'noop', 'maintenance', 'pending', '{}'::jsonb, 3, 'demo', \
                now() - interval '1 second', now() + interval '1 day' \
         FROM generate_series(1, $1)",
    )
    .bind(n)
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query_scalar("SELECT id FROM tasks ORDER BY run_at, id")
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

async fn pushed(app: &TestApp) -> Vec<Uuid> {
    sqlx::query_scalar("SELECT id FROM tasks WHERE pushed_at IS NOT NULL ORDER BY run_at, id")
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

/// The message of `id` was lost before a worker took it (what `store::mark_unpushed`
/// records when a claim finds its task waiting again).
async fn lose_message(app: &TestApp, id: Uuid) {
    engine::store::mark_unpushed(&app.pool, &[id])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_starts_after_the_last_one_and_the_head_is_read_again_at_the_end() {
    let app = TestApp::spawn().await;
    let ids = seed(&app, 7).await;
    let relay = relay(&app, 3);
    assert_eq!(relay.relay_queue(queue::MAINTENANCE).await.unwrap(), 3);
    assert_eq!(pushed(&app).await, ids[..3]);
    lose_message(&app, ids[0]).await;
    // Starts after the first pass: the next three, not the lost one behind them.
    assert_eq!(relay.relay_queue(queue::MAINTENANCE).await.unwrap(), 3);
    assert_eq!(pushed(&app).await, ids[1..6]);
    // The last one; fewer than a batch, so the end was reached...
    assert_eq!(relay.relay_queue(queue::MAINTENANCE).await.unwrap(), 1);
    assert_eq!(pushed(&app).await, ids[1..]);
    // ...and the next pass reads from the head, where the lost message's task waits.
    assert_eq!(relay.relay_queue(queue::MAINTENANCE).await.unwrap(), 1);
    assert_eq!(pushed(&app).await, ids);
    assert_eq!(relay.relay_queue(queue::MAINTENANCE).await.unwrap(), 0);
    let depth = transport(&app).depth(queue::MAINTENANCE).await.unwrap();
    assert_eq!(
        depth, 8,
        "one message per task, two for the one whose first was lost"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_due_behind_a_long_run_of_passes_waits_at_most_a_second() {
    let app = TestApp::spawn().await;
    let ids = seed(&app, 12).await;
    let relay = relay(&app, 2);
    assert_eq!(relay.relay_queue(queue::MAINTENANCE).await.unwrap(), 2);
    lose_message(&app, ids[0]).await;
    // Every pass is full, so none reaches the end of the queue.
    assert_eq!(relay.relay_queue(queue::MAINTENANCE).await.unwrap(), 2);
    assert_eq!(pushed(&app).await, ids[1..4]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(relay.relay_queue(queue::MAINTENANCE).await.unwrap(), 2);
    let now = pushed(&app).await;
    assert!(now.contains(&ids[0]), "the lost one is pushed again");
    assert_eq!(
        now.len(),
        5,
        "{now:?}: the head, then the next one after the pushed ones"
    );
    assert!(now.contains(&ids[4]));
}
