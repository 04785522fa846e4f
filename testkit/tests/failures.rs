//! Failures are recorded and decided by our task layer: retries with backoff then `dead`,
//! `failed` at once for permanent errors, panics and timeouts caught, cancellation.

use std::time::Duration;

use axum::http::StatusCode;
use engine::{retry::Backoff, AttemptError, TaskStatus};
use jobs::queues as queue;
use serde_json::json;
use testkit::{fixtures::*, kinds::*, *};

const WAIT: Duration = Duration::from_secs(20);

fn errors(rec: &engine::TaskRecord) -> Vec<AttemptError> {
    serde_json::from_value(rec.errors.clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_kind_retries_with_backoff_and_ends_dead() {
    let app = TestApp::builder()
        .workers(&[queue::MAINTENANCE])
        .spawn()
        .await;
    let spec = failing();
    let id = enqueue(&app, &spec, json!({})).await;
    let rec = app.wait_finished(id, WAIT).await;
    assert_eq!(rec.status(), TaskStatus::Dead);
    assert_eq!(rec.attempts, spec.max_attempts);
    let history = errors(&rec);
    assert_eq!(
        history.len(),
        spec.max_attempts as usize,
        "one error per attempt"
    );
    let backoff: Backoff = spec.backoff;
    for (i, e) in history.iter().enumerate() {
        assert_eq!(e.attempt, i as i32 + 1);
        assert_eq!(e.code, "upstream_unavailable");
        if e.attempt < spec.max_attempts {
            // Full jitter: each delay lies in [0, base × 2^(attempt-1)], and ceilings grow.
            let delay = (e.retry_at.expect("retry scheduled") - e.at)
                .to_std()
                .unwrap_or_default();
            assert!(
                delay <= backoff.ceiling(e.attempt),
                "attempt {}: {delay:?}",
                e.attempt
            );
            // The next attempt did not start before its scheduled time.
            assert!(history[i + 1].at >= e.retry_at.unwrap());
        } else {
            assert!(e.retry_at.is_none(), "the last failure schedules nothing");
        }
    }
    assert!(backoff.ceiling(3) > backoff.ceiling(2) && backoff.ceiling(2) > backoff.ceiling(1));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transient_failure_is_retried_until_it_succeeds() {
    let app = TestApp::builder()
        .workers(&[queue::MAINTENANCE])
        .spawn()
        .await;
    let id = enqueue(&app, &flaky(), json!({})).await;
    let rec = app.wait_finished(id, WAIT).await;
    assert_eq!(rec.status(), TaskStatus::Completed);
    assert_eq!(rec.attempts, 3);
    assert_eq!(rec.result.as_ref().unwrap()["succeededOnAttempt"], 3);
    assert_eq!(
        errors(&rec).len(),
        2,
        "the two failed attempts stay in the history"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_permanent_error_fails_at_once() {
    let app = TestApp::builder()
        .workers(&[queue::MAINTENANCE])
        .spawn()
        .await;
    let id = enqueue(&app, &permanent(), json!({})).await;
    let rec = app.wait_finished(id, WAIT).await;
    assert_eq!(rec.status(), TaskStatus::Failed);
    assert_eq!(rec.attempts, 1);
    assert_eq!(rec.error.unwrap()["code"], "invalid_input");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn panics_and_timeouts_are_recorded_and_the_worker_survives() {
    let app = TestApp::builder()
        .seed_demo()
        .workers(&[queue::MAINTENANCE, queue::ASSIGNMENTS])
        .spawn()
        .await;
    let panics = enqueue(&app, &panicking(), json!({})).await;
    let hangs = enqueue(&app, &hanging(), json!({})).await;

    let rec = app.wait_finished(panics, WAIT).await;
    assert_eq!(rec.status(), TaskStatus::Dead);
    let history = errors(&rec);
    assert_eq!(history.len(), 2);
    assert!(
        history
            .iter()
            .all(|e| e.code == "panic" && e.message.contains("boom in handler")),
        "{history:?}"
    );

    let rec = app.wait_finished(hangs, WAIT).await;
    assert_eq!(rec.status(), TaskStatus::Dead);
    assert!(errors(&rec).iter().all(|e| e.code == "timeout"));

    // Same worker, still serving.
    let ok = enqueue(
        &app,
        &engine::KindSpec::of::<jobs::kinds::assignment::Assignment>(),
        assignment_params("ev_demo", 1, 100),
    )
    .await;
    assert_eq!(
        app.wait_finished(ok, WAIT).await.status(),
        TaskStatus::Completed
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_while_pending_is_immediate_and_nothing_runs() {
    let app = TestApp::builder().seed_demo().spawn().await;
    let id = app.assign(json!({"organizerId":"org_demo","eventId":"ev_demo","type":"prepaid","tickets":2,"price":1})).await.task_id();
    let (status, body) = app
        .call(
            "POST",
            &format!("/director/reports/tasks/{id}/cancel"),
            Some(DEMO),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "cancelled");
    let (status, body) = app.cancel(id, DEMO).await;
    assert_eq!(status, StatusCode::CONFLICT, "already cancelled: {body}");

    // The message is still in Redis; a worker must skip it.
    let worker = app.start_worker(&[queue::ASSIGNMENTS]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rec = app.task(id).await;
    assert_eq!(rec.status(), TaskStatus::Cancelled);
    assert_eq!(rec.attempts, 0);
    assert_eq!(ledger_rows_for(&app, id).await, 0);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_while_running_stops_the_handler_between_chunks() {
    let app = TestApp::builder()
        .workers(&[queue::MAINTENANCE])
        .spawn()
        .await;
    let id = enqueue(&app, &slow(), json!({})).await;
    app.wait_until(id, WAIT, |s| s == TaskStatus::Running).await;
    // Let it make some progress first.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = app.get_task(id, DEMO).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body["progress"].as_i64().unwrap() > 0,
        "live progress is visible: {body}"
    );
    assert_eq!(body["stage"], "work");

    let (status, body) = app.cancel(id, DEMO).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["cancelRequested"], true);
    let rec = app.wait_finished(id, WAIT).await;
    assert_eq!(rec.status(), TaskStatus::Cancelled);
    assert!(
        rec.result.is_none(),
        "stopped before finishing its 200 chunks"
    );
    assert_eq!(rec.error.unwrap()["code"], "cancelled");
    app.stop().await;
}

/// A worker that dies with the task: the relay decides from the row alone.
async fn claim_and_abandon(app: &TestApp, id: uuid::Uuid) {
    let claimed =
        engine::store::claim(&app.pool, &[id], "doomed-worker", Duration::from_millis(50))
            .await
            .unwrap();
    assert_eq!(claimed.len(), 1);
    tokio::time::sleep(Duration::from_millis(200)).await; // the lease runs out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_worker_on_the_last_attempt_makes_the_task_dead_and_a_cancelled_one_cancelled() {
    let app = TestApp::spawn().await;
    // `test.slow` allows a single attempt; it already lost workers while sharing them and
    // now runs alone, so losing this one counts (see `store::take_expired`).
    let last_attempt = enqueue(&app, &slow(), json!({})).await;
    sqlx::query("UPDATE tasks SET isolate = true, attempts = 2, lease_losses = 2 WHERE id = $1")
        .bind(last_attempt)
        .execute(&app.pool)
        .await
        .unwrap();
    let last_attempt_claim = engine::store::claim_isolated(
        &app.pool,
        last_attempt,
        "doomed-worker",
        Duration::from_millis(50),
    )
    .await
    .unwrap();
    assert!(last_attempt_claim.is_some());
    let cancelled = enqueue(&app, &flaky(), json!({})).await;
    let retried = enqueue(&app, &flaky(), json!({})).await;
    for id in [cancelled, retried] {
        engine::store::claim(&app.pool, &[id], "doomed-worker", Duration::from_millis(50))
            .await
            .unwrap();
    }
    let outcome = engine::actions::cancel(&app.pool, &testkit::kinds::hooks(), cancelled, None)
        .await
        .unwrap();
    assert!(matches!(
        outcome,
        engine::actions::CancelOutcome::Requested(_)
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;

    relay(&app, 100)
        .relay_queue(queue::MAINTENANCE)
        .await
        .unwrap();

    let rec = app.task(last_attempt).await;
    assert_eq!(rec.status(), TaskStatus::Dead);
    assert_eq!(rec.error.as_ref().unwrap()["code"], "worker_lost");
    assert_eq!(
        errors(&rec)[0].attempt,
        3,
        "two forgiven losses, then this one"
    );
    // The same loss while sharing a worker is forgiven: due again, attempt given back.
    let shared = enqueue(&app, &slow(), json!({})).await;
    claim_and_abandon(&app, shared).await;
    relay(&app, 100)
        .relay_queue(queue::MAINTENANCE)
        .await
        .unwrap();
    let rec = app.task(shared).await;
    assert_eq!(rec.status(), TaskStatus::Retrying, "{:?}", rec.error);
    assert!(rec.error.is_none());
    let rec = app.task(cancelled).await;
    assert_eq!(
        rec.status(),
        TaskStatus::Cancelled,
        "not run again after its worker died"
    );
    let rec = app.task(retried).await;
    assert_eq!(
        rec.status(),
        TaskStatus::Retrying,
        "attempts left: due again for a new worker"
    );
    assert!(rec.error.is_none());
    // …which can claim it, as attempt 2.
    let again = engine::store::claim(
        &app.pool,
        &[retried],
        "next-worker",
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    assert_eq!(again[0].attempt, 2);
}

/// A loss while running alone counts like a failed attempt and waits the kind's backoff like
/// one. Due again at once, an innocent task came back about a lease after each loss, and a
/// failure recurring with that period (workers killed every second, 1 s leases) met every
/// one of its solitary runs and dead-lettered it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_solitary_attempt_waits_the_kinds_backoff_before_it_runs_again() {
    let app = TestApp::spawn().await;
    let noop = engine::KindSpec::of::<jobs::kinds::noop::Noop>();
    let mut alone = Vec::new();
    for n in 0..20 {
        alone.push(enqueue(&app, &noop, json!({ "n": n })).await);
    }
    // Two forgiven losses behind each: they run alone now, and this loss counts.
    sqlx::query(
        "UPDATE tasks SET isolate = true, attempts = 2, lease_losses = 2 WHERE id = ANY($1)",
    )
    .bind(&alone)
    .execute(&app.pool)
    .await
    .unwrap();
    for id in &alone {
        let claimed = engine::store::claim_isolated(
            &app.pool,
            *id,
            "doomed-worker",
            Duration::from_millis(50),
        )
        .await
        .unwrap();
        assert!(claimed.is_some());
    }
    let shared = enqueue(&app, &noop, json!({ "n": "shared" })).await;
    claim_and_abandon(&app, shared).await;
    let lost_at = chrono::Utc::now();
    relay(&app, 100)
        .relay_queue(queue::MAINTENANCE)
        .await
        .unwrap();
    let relayed_at = chrono::Utc::now();

    type Row = (String, chrono::DateTime<chrono::Utc>, bool);
    let row = |id: uuid::Uuid| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_as::<_, Row>(
                "SELECT status, run_at, pushed_at IS NOT NULL FROM tasks WHERE id = $1",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let (status, run_at, pushed) = row(shared).await;
    assert_eq!(
        (status.as_str(), pushed),
        ("retrying", true),
        "a forgiven loss is pushed at once"
    );
    assert!(run_at <= chrono::Utc::now());

    // Noop's backoff: the first counted attempt waits up to 1 s, with full jitter.
    let mut due = Vec::new();
    for id in &alone {
        let (status, run_at, pushed) = row(*id).await;
        assert_eq!(status, "retrying");
        assert!(!pushed, "left for the pass that finds it due");
        assert!(run_at >= lost_at, "due again before its loss was seen");
        assert!(
            run_at <= relayed_at + chrono::Duration::seconds(1),
            "waited past the backoff's first ceiling: {run_at}"
        );
        due.push((run_at, *id));
    }
    due.sort();
    let (first, _) = due[0];
    let (last, latest) = due[due.len() - 1];
    assert!(
        last - first > chrono::Duration::milliseconds(100),
        "jittered: {first} .. {last}"
    );
    // A message that arrives early does not run it early…
    let asked_at = chrono::Utc::now();
    let early = engine::store::claim_isolated(&app.pool, latest, "w", Duration::from_secs(30))
        .await
        .unwrap();
    if last - asked_at > chrono::Duration::milliseconds(50) {
        assert!(early.is_none(), "claimed before its backoff ended");
    }
    // …and once due, a pass pushes it.
    tokio::time::sleep((last - chrono::Utc::now()).to_std().unwrap_or_default()).await;
    relay(&app, 100)
        .relay_queue(queue::MAINTENANCE)
        .await
        .unwrap();
    for id in &alone {
        assert!(row(*id).await.2, "pushed once due");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operators_list_and_redrive_the_dead_letter_queue() {
    let app = TestApp::builder()
        .workers(&[queue::MAINTENANCE])
        .spawn()
        .await;
    let dead_a = enqueue(&app, &failing(), json!({"n": 1})).await;
    let dead_b = enqueue(&app, &failing(), json!({"n": 2})).await;
    let failed = enqueue(&app, &permanent(), json!({})).await;
    for id in [dead_a, dead_b, failed] {
        app.wait_finished(id, WAIT).await;
    }
    const ADMIN: &str = "admin-token";

    let (status, _) = app
        .call("GET", "/admin/tasks?status=dead", Some(DEMO), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "operators only");
    let (status, body) = app.admin_tasks("status=dead&kind=test.failing").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["meta"]["total"], 2);
    let (_, queues) = app.admin_queues().await;
    let maintenance = queues["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == "maintenance")
        .unwrap();
    assert_eq!(
        (maintenance["dead"].clone(), maintenance["failed"].clone()),
        (json!(2), json!(1))
    );

    // One failed task re-driven: it runs again (and fails again: its error is permanent).
    let (status, body) = app.admin_retry(failed).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "pending");
    assert_eq!(body["attempts"], 0);
    let rec = app.wait_finished(failed, WAIT).await;
    assert_eq!(rec.status(), TaskStatus::Failed);
    assert_eq!(errors(&rec).len(), 2, "history kept across the re-drive");
    let (status, _) = app
        .call(
            "POST",
            &format!("/admin/tasks/{}/retry", uuid::Uuid::now_v7()),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The whole dead-letter queue of a kind, re-driven at once: a fresh set of attempts each.
    let (status, body) = app.admin_retry_all("status=dead&kind=test.failing").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["redriven"], 2);
    for id in [dead_a, dead_b] {
        let rec = app.wait_finished(id, WAIT).await;
        assert_eq!(rec.status(), TaskStatus::Dead);
        assert_eq!(rec.attempts, failing().max_attempts);
        assert_eq!(errors(&rec).len(), 2 * failing().max_attempts as usize);
    }
    let (status, _) = app.admin_retry_all("status=completed").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = app.admin_delete(failed).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    app.stop().await;
}
