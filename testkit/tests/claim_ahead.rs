//! Tasks claimed ahead of a free slot (`engine::slots`): `running` while they wait, given
//! back without counting when the wait is too long or the worker shuts down, and ended
//! `cancelled` without running when cancellation was asked meanwhile.

use std::{sync::Arc, time::Duration};

use engine::{actions, runner::Runner, slots::Slots, transport::Envelope, KindSpec, TaskStatus};
use jobs::kinds::noop;
use serde_json::json;
use testkit::{fixtures::*, *};
use tokio::sync::Notify;

/// A runner of its own, with a short lease so cancel requests reach it quickly.
fn runner(app: &TestApp) -> Arc<Runner<jobs::Services>> {
    let mut config = app.config.clone();
    config.task_lease = Duration::from_millis(600);
    let shared = Arc::new(jobs::Services::runtime(
        app.pool.clone(),
        config,
        app.redis.clone(),
    ));
    Runner::start(
        shared,
        Arc::new(jobs::kinds::registry().unwrap()),
        "claim-ahead".into(),
        Arc::new(Notify::new()),
    )
}

/// One slot, handlers known to be short, so the next message is claimed ahead.
fn one_short_slot(wait_max: Duration) -> Arc<Slots> {
    let slots = Slots::with_wait_max(1, wait_max);
    slots.observe_claim(Duration::from_millis(1));
    slots.observe(Duration::from_micros(100));
    slots
}

async fn noop_task(app: &TestApp, sleep_ms: u64) -> uuid::Uuid {
    enqueue(
        app,
        &KindSpec::of::<noop::Noop>(),
        json!({ "sleepMs": sleep_ms }),
    )
    .await
}

/// Starts handling `id` in the background.
fn handle(
    runner: &Arc<Runner<jobs::Services>>,
    slots: &Arc<Slots>,
    id: uuid::Uuid,
) -> tokio::task::JoinHandle<()> {
    let (runner, slots) = (runner.clone(), slots.clone());
    tokio::spawn(async move { runner.handle(Envelope::new(id, noop::NAME), &slots).await })
}

/// A runner with one short slot (a task claimed ahead waits at most `wait_max`), running a
/// long attempt, and `next` (a noop sleeping `next_sleep_ms`) claimed ahead behind it.
struct ClaimedAhead {
    app: TestApp,
    runner: Arc<Runner<jobs::Services>>,
    slots: Arc<Slots>,
    long: uuid::Uuid,
    next: uuid::Uuid,
}

async fn claimed_ahead(wait_max: Duration, next_sleep_ms: u64) -> ClaimedAhead {
    let app = TestApp::spawn().await;
    let runner = runner(&app);
    let slots = one_short_slot(wait_max);
    let next = noop_task(&app, next_sleep_ms).await;
    let long = noop_task(&app, 2_000).await;
    handle(&runner, &slots, long);
    app.wait_for_within(long, TaskStatus::Running, Duration::from_secs(5))
        .await;
    handle(&runner, &slots, next);
    let rec = app
        .wait_until(next, Duration::from_secs(5), |s| s == TaskStatus::Running)
        .await;
    assert_eq!(
        rec.attempts, 1,
        "claimed ahead: its attempt is counted while it waits"
    );
    ClaimedAhead {
        app,
        runner,
        slots,
        long,
        next,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_task_claimed_ahead_of_a_long_attempt_is_given_back_and_runs_later() {
    let ClaimedAhead {
        app,
        runner: r,
        slots,
        long,
        next: short,
    } = claimed_ahead(Duration::from_millis(300), 0).await;

    // Waited longer than it may: given back, its attempt not counted, for any worker.
    let rec = app
        .wait_until(short, Duration::from_secs(5), |s| s == TaskStatus::Pending)
        .await;
    assert_eq!(rec.attempts, 0);
    let long_rec = app.task(long).await;
    assert_eq!(
        long_rec.status(),
        TaskStatus::Running,
        "the long attempt still runs"
    );
    let pushed: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT pushed_at FROM tasks WHERE id = $1")
            .bind(short)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(pushed, None, "the relay pushes it again at its next pass");

    // Delivered again once the slot is free, it runs as its first attempt.
    app.wait_for_within(long, TaskStatus::Completed, Duration::from_secs(10))
        .await;
    r.handle(Envelope::new(short, noop::NAME), &slots).await;
    let rec = app.wait_for(short, TaskStatus::Completed).await;
    assert_eq!(rec.attempts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_task_cancelled_while_claimed_ahead_ends_cancelled_without_running() {
    // If it ran, it would still be running 3 s after its slot came.
    let ClaimedAhead {
        app, long, next, ..
    } = claimed_ahead(Duration::from_secs(10), 3_000).await;

    let hooks = app.registry().hooks();
    let outcome = actions::cancel(&app.pool, &hooks, next, None)
        .await
        .unwrap();
    assert!(
        matches!(outcome, actions::CancelOutcome::Requested(_)),
        "a running task is asked to stop: {outcome:?}"
    );
    app.wait_for_within(long, TaskStatus::Completed, Duration::from_secs(10))
        .await;
    let rec = app.wait_finished(next, Duration::from_secs(2)).await;
    assert_eq!(rec.status(), TaskStatus::Cancelled, "{rec:?}");
    assert_eq!(rec.result, None, "its handler never ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_shutdown_gives_back_tasks_claimed_ahead_without_counting_them() {
    let ClaimedAhead {
        app,
        runner: r,
        long,
        next,
        ..
    } = claimed_ahead(Duration::from_secs(10), 0).await;

    assert_eq!(
        r.release_all().await,
        2,
        "the running attempt and the one claimed ahead"
    );
    for id in [long, next] {
        let rec = app.task(id).await;
        assert_eq!(rec.status(), TaskStatus::Pending, "{id}");
        assert_eq!(rec.attempts, 0, "{id}");
    }
    // The one claimed ahead gets its slot now, and must not run: it was given back.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rec = app.task(next).await;
    assert_eq!((rec.status(), rec.attempts), (TaskStatus::Pending, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_queue_busy_with_long_handlers_takes_no_message_it_cannot_start() {
    let app = TestApp::builder()
        .worker_settings(|w| {
            w.queues.insert(jobs::queues::MAINTENANCE.into(), 1);
        })
        .workers(&[jobs::queues::MAINTENANCE])
        .spawn()
        .await;
    let first = noop_task(&app, 3_000).await;
    app.wait_for_within(first, TaskStatus::Running, Duration::from_secs(5))
        .await;
    let mut queued = Vec::new();
    for _ in 0..12 {
        queued.push(noop_task(&app, 3_000).await);
    }
    // Several poll intervals and wake-ups: a consumer that took messages would have by now.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let depth = transport(&app)
        .depth(jobs::queues::MAINTENANCE)
        .await
        .unwrap();
    // At most one fetch batch (4) may sit in the consumer; the rest stays in Redis for
    // any replica with a free slot.
    assert!(depth >= 12 - 4, "only {depth} of 12 messages left in Redis");
    for id in queued {
        let rec = app.task(id).await;
        assert_eq!(
            (rec.status(), rec.attempts),
            (TaskStatus::Pending, 0),
            "{id}"
        );
    }
    app.stop().await;
}
