//! Assignments finishing together are written in one transaction (`engine::group`): each
//! task is still completed exactly with its own ledger entry, one bad task neither fails
//! nor repeats the others, balances in results are as of each entry, and the roll-ups stay
//! exact.

use std::{collections::BTreeMap, time::Duration};

use engine::TaskStatus;
use jobs::queues as queue;
use serde_json::{json, Value};
use testkit::{fixtures::*, *};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);

fn params(organizer: &str, event: &str, tickets: i32) -> Value {
    json!({
        "organizerId": organizer, "eventId": event, "type": "prepaid",
        "tickets": tickets, "priceCents": 250, "currency": "MXN", "metadata": {}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_group_commits_its_good_tasks_once_and_fails_only_its_bad_ones() {
    let app = TestApp::builder().seed_demo().spawn().await;
    // A ledger row the database itself refuses (the writer cannot see it coming): the
    // group's transaction fails and its tasks are committed again one at a time.
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_thirteen() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF NEW.tickets = 13 THEN RAISE EXCEPTION 'test: the ledger refuses 13 tickets'; END IF; \
         RETURN NEW; END $$; \
         CREATE TRIGGER refuse_thirteen BEFORE INSERT ON director_ledger_entries \
         FOR EACH ROW EXECUTE FUNCTION refuse_thirteen();",
    )
    .execute(&app.pool)
    .await
    .unwrap();

    let spec = engine::KindSpec::of::<jobs::kinds::assignment::Assignment>();
    // Everything is waiting before the worker starts, so its slots fill at once and the
    // attempts finish together.
    let mut good: Vec<(Uuid, &str, i32)> = Vec::new();
    for n in 0..48 {
        let (organizer, event) = match n % 3 {
            0 => ("org_demo", "ev_demo"),
            1 => ("org_demo", "ev_premium"),
            _ => ("org_acme", "ev_demo"),
        };
        let tickets = n + 20;
        let id = enqueue(&app, &spec, params(organizer, event, tickets)).await;
        good.push((id, organizer, tickets));
    }
    let missing_event = enqueue(&app, &spec, params("org_demo", "ev_missing", 1)).await;
    let refused = enqueue(&app, &spec, params("org_acme", "ev_demo", 13)).await;
    app.add_worker(&[queue::ASSIGNMENTS]);

    for (id, _, _) in &good {
        let rec = app.wait_finished(*id, WAIT).await;
        assert_eq!(rec.status(), TaskStatus::Completed, "{:?}", rec.error);
        assert_eq!(
            rec.attempts, 1,
            "a good task is never repeated for a bad one"
        );
        assert_eq!(ledger_rows_for(&app, *id).await, 1);
    }
    let rec = app.wait_finished(missing_event, WAIT).await;
    assert_eq!(rec.status(), TaskStatus::Failed);
    assert_eq!(rec.attempts, 1);
    assert_eq!(rec.error.as_ref().unwrap()["code"], "event_not_found");
    assert_eq!(ledger_rows_for(&app, missing_event).await, 0);

    let rec = app
        .wait_until_record(refused, WAIT, |r| r.status() == TaskStatus::Retrying)
        .await;
    let error = rec.error.as_ref().unwrap();
    assert_eq!(error["code"], "database_error", "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("refuses 13 tickets"),
        "{error}"
    );
    assert_eq!(ledger_rows_for(&app, refused).await, 0);

    // The tasks really shared transactions: completions carry their transaction's now().
    let ids: Vec<Uuid> = good.iter().map(|g| g.0).collect();
    let (tasks, commits): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT finished_at) FROM tasks WHERE id = ANY($1)",
    )
    .bind(&ids)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(tasks, 48);
    assert!(
        commits < tasks,
        "{commits} commits for {tasks} tasks: nothing was grouped"
    );

    // Each result's balance is the organizer's balance right after that entry: ordered by
    // it, every step adds exactly the entry's amount, from zero to the stored balance.
    let mut by_organizer: BTreeMap<&str, Vec<(i64, i64)>> = BTreeMap::new();
    for (id, organizer, _) in &good {
        let result: Value = sqlx::query_scalar("SELECT result FROM tasks WHERE id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        assert_eq!(result["entry"]["taskId"], id.to_string());
        by_organizer.entry(organizer).or_default().push((
            result["balance"]["assignedCents"].as_i64().unwrap(),
            result["entry"]["amountCents"].as_i64().unwrap(),
        ));
    }
    for (organizer, mut steps) in by_organizer {
        steps.sort();
        let mut running = 0;
        for (assigned, amount) in &steps {
            running += amount;
            assert_eq!(*assigned, running, "{organizer}: {steps:?}");
        }
        let stored: i64 = sqlx::query_scalar(
            "SELECT assigned_cents FROM organizer_balances WHERE organizer_id = $1",
        )
        .bind(organizer)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        assert_eq!(stored, running, "{organizer}");
    }
    let expected: i64 = good.iter().map(|g| i64::from(g.2) * 250).sum();
    let total: i64 =
        sqlx::query_scalar("SELECT sum(amount_cents)::int8 FROM director_ledger_entries")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(total, expected);
    let drift = rollup_drift(&app.pool).await;
    assert!(drift.iter().all(|(_, rows)| *rows == 0), "{drift:?}");
    app.stop().await;
}
