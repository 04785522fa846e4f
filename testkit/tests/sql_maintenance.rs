//! `sql_maintenance` (seeds/004, "Cron Jobs Recomendados"): each allow-listed function
//! changes the rows it should and the task's result carries how many; a name outside the
//! allow-list fails the task for good, naming the field, and reaches no database function.

use engine::{KindSpec, TaskStatus};
use jobs::{kinds::sql_maintenance::SqlMaintenance, queues};
use serde_json::{json, Value};
use testkit::{fixtures::enqueue, TestApp};

const FIXTURE: &str = "
    INSERT INTO user_redemptions (user_id, offer_id, lumis_spent, redemption_code, redemption_status, code_expires_at) VALUES
      (1, gen_random_uuid(), 100, 'EXPIRED-1', 'pending',   now() - interval '1 hour'),
      (2, gen_random_uuid(), 100, 'EXPIRED-2', 'pending',   now() - interval '3 days'),
      (3, gen_random_uuid(), 100, 'VALID-3',   'pending',   now() + interval '1 hour'),
      (4, gen_random_uuid(), 100, 'USED-4',    'confirmed', now() - interval '1 hour'),
      (5, gen_random_uuid(), 100, 'GONE-5',    'cancelled', now() - interval '1 hour');
    INSERT INTO redemption_audit_log (action, actor_type, created_at) VALUES
      ('created', 'user',   now() - interval '200 days'),
      ('created', 'user',   now() - interval '91 days'),
      ('expired', 'system', now() - interval '89 days'),
      ('created', 'user',   now() - interval '45 days');";

async fn run(app: &TestApp, params: Value) -> engine::TaskRecord {
    let id = enqueue(app, &KindSpec::of::<SqlMaintenance>(), params).await;
    app.wait_finished(id, app.wait_timeout).await
}

async fn app() -> TestApp {
    let app = TestApp::builder()
        .workers(&[queues::MAINTENANCE])
        .spawn()
        .await;
    sqlx::raw_sql(FIXTURE).execute(&app.pool).await.unwrap();
    app
}

async fn audit_rows(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM redemption_audit_log")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expire_old_redemptions_expires_pending_codes_past_their_expiry() {
    let app = app().await;
    let rec = run(
        &app,
        json!({ "function": "expire_old_redemptions", "trigger": "cron" }),
    )
    .await;
    assert_eq!(rec.status(), TaskStatus::Completed, "{:?}", rec.error);
    assert_eq!(
        rec.result.unwrap(),
        json!({ "function": "expire_old_redemptions", "rows": 2 })
    );
    let codes: Vec<(String, String)> = sqlx::query_as(
        "SELECT redemption_code, redemption_status FROM user_redemptions ORDER BY redemption_code",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let want = [
        ("EXPIRED-1", "expired"),
        ("EXPIRED-2", "expired"),
        ("GONE-5", "cancelled"),
        ("USED-4", "confirmed"),
        ("VALID-3", "pending"),
    ];
    assert_eq!(
        codes,
        want.map(|(a, b)| (a.to_string(), b.to_string())).to_vec()
    );
    // The seed's audit trigger logged both expirations as the system's.
    let logged: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM redemption_audit_log WHERE action = 'expired' AND actor_type = 'system' \
         AND redemption_id IS NOT NULL",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(logged, 2);

    let again = run(&app, json!({ "function": "expire_old_redemptions" })).await;
    assert_eq!(again.result.unwrap()["rows"], 0, "idempotent");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_cleanup_keeps_ninety_days_by_default_or_the_given_retention() {
    let app = app().await;
    // 4 fixture rows + 5 'created' rows the trigger wrote for the redemptions just now.
    assert_eq!(audit_rows(&app).await, 9);
    let rec = run(&app, json!({ "function": "cleanup_redemption_audit_log" })).await;
    assert_eq!(
        rec.result.unwrap(),
        json!({ "function": "cleanup_redemption_audit_log", "rows": 2 })
    );
    assert_eq!(audit_rows(&app).await, 7);

    let rec = run(
        &app,
        json!({ "function": "cleanup_redemption_audit_log", "retentionDays": 30 }),
    )
    .await;
    assert_eq!(rec.result.unwrap()["rows"], 2, "the 89- and 45-day rows");
    assert_eq!(audit_rows(&app).await, 5);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_outside_the_allow_list_fails_naming_the_field_and_runs_nothing() {
    let app = app().await;
    for params in [
        json!({ "function": "pg_terminate_backend" }),
        json!({ "function": "expire_old_redemptions(); DELETE FROM user_redemptions; --" }),
        json!({}),
    ] {
        let rec = run(&app, params.clone()).await;
        assert_eq!(rec.status(), TaskStatus::Failed, "{params}");
        assert_eq!(rec.attempts, 1, "a permanent failure is not retried");
        let error = serde_json::to_value(&rec.error).unwrap();
        let text = error.to_string();
        assert!(text.contains("invalid_params"), "{text}");
        assert!(text.contains("function"), "{text}");
    }
    let pending: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM user_redemptions WHERE redemption_status = 'pending'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(pending, 3, "nothing ran");
    app.stop().await;
}
