//! `landing_ttl` (seeds/001, "Jobs nocturnos"): events move `active → archived → expired`
//! by their TTL after their date, the landing caches go, the Redis lock keeps a second run
//! out unless forced, a dry run changes nothing, and a run interrupted between batches is
//! finished by its retry without applying anything twice. Also the CLI and the settings.

use std::{process::Stdio, time::Duration};

use engine::{KindSpec, TaskStatus};
use jobs::{
    kinds::landing_ttl::{self, LandingTtl},
    queues,
};
use serde_json::{json, Value};
use testkit::{fixtures::enqueue, TestApp};

fn spec() -> KindSpec<jobs::Services> {
    KindSpec::of::<LandingTtl>()
}

/// With the default TTL of 30 days (archived at date + 30 d, expired at date + 60 d):
const FIXTURE: &str = "
    INSERT INTO events (id, name, starts_at, ends_at, landing_status, landing_ttl_days) VALUES
      ('future',       'not yet held',          now() + interval '10 days', NULL, 'active', NULL),
      ('recent',       'ended 10 d ago',        NULL, now() - interval '10 days', 'active', NULL),
      ('to_archive',   'ended 40 d ago',        now() - interval '41 days', now() - interval '40 days', 'active', NULL),
      ('starts_only',  'started 35 d ago',      now() - interval '35 days', NULL, 'active', NULL),
      ('to_expire',    'ended 70 d ago',        NULL, now() - interval '70 days', 'active', NULL),
      ('arch_expire',  'archived, 61 d ago',    NULL, now() - interval '61 days', 'archived', NULL),
      ('arch_stays',   'archived, 45 d ago',    NULL, now() - interval '45 days', 'archived', NULL),
      ('own_ttl',      'own TTL 90, 40 d ago',  NULL, now() - interval '40 days', 'active', 90),
      ('undated',      'no date',               NULL, NULL, 'active', NULL),
      ('gone',         'expired long ago',      NULL, now() - interval '900 days', 'expired', NULL)";

/// Each event's landing status after a real run over [`FIXTURE`].
const EXPECTED: [(&str, &str); 10] = [
    ("arch_expire", "expired"),
    ("arch_stays", "archived"),
    ("future", "active"),
    ("gone", "expired"),
    ("own_ttl", "active"),
    ("recent", "active"),
    ("starts_only", "archived"),
    ("to_archive", "archived"),
    ("to_expire", "expired"),
    ("undated", "active"),
];

async fn statuses(app: &TestApp) -> Vec<(String, String)> {
    sqlx::query_as("SELECT id, landing_status FROM events ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

fn expected() -> Vec<(String, String)> {
    EXPECTED
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

async fn redis_set(app: &TestApp, key: &str, value: &str) {
    let mut c = app.redis.clone();
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query_async(&mut c)
        .await
        .unwrap();
}

async fn redis_get(app: &TestApp, key: &str) -> Option<String> {
    let mut c = app.redis.clone();
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut c)
        .await
        .unwrap()
}

/// Landing caches (one page, one dashboard) and a key that is not a landing cache.
async fn caches(app: &TestApp) -> [String; 3] {
    let p = app.keys.prefix();
    let keys = [
        format!("{p}:landing:to_archive"),
        format!("{p}:landing:dashboard:org_demo"),
        format!("{p}:director:unrelated"),
    ];
    for k in &keys {
        redis_set(app, k, "cached").await;
    }
    keys
}

fn lock_key(app: &TestApp) -> String {
    app.config.landing.lock_key(app.keys.prefix())
}

async fn run(app: &TestApp, params: Value) -> Value {
    let id = enqueue(app, &spec(), params).await;
    let rec = app.wait_for(id, TaskStatus::Completed).await;
    rec.result.expect("a result")
}

async fn app_with_fixture() -> TestApp {
    let app = TestApp::builder()
        .workers(&[queues::MAINTENANCE])
        .spawn()
        .await;
    sqlx::raw_sql(FIXTURE).execute(&app.pool).await.unwrap();
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_cross_both_thresholds_and_the_landing_caches_go() {
    let app = app_with_fixture().await;
    let [page, dashboard, unrelated] = caches(&app).await;

    let result = run(&app, json!({ "trigger": "cron" })).await;
    assert_eq!(
        result["transitions"],
        json!({ "activeToArchived": 2, "archivedToExpired": 1, "activeToExpired": 1 }),
        "{result}"
    );
    assert_eq!(result["total"], 4);
    assert_eq!(result["lock"], "held");
    assert_eq!(result["defaultTtlDays"], 30);
    assert_eq!(statuses(&app).await, expected());
    assert!(
        redis_get(&app, &page).await.is_none(),
        "landing page cache kept"
    );
    assert!(
        redis_get(&app, &dashboard).await.is_none(),
        "dashboard cache kept"
    );
    assert_eq!(redis_get(&app, &unrelated).await.as_deref(), Some("cached"));
    assert!(
        result["cacheKeysDeleted"].as_u64().unwrap() >= 2,
        "{result}"
    );
    assert!(
        redis_get(&app, &lock_key(&app)).await.is_none(),
        "the lock is released after the run"
    );
    let stamped: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE landing_status_at IS NOT NULL")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(stamped, 4, "only the moved events carry a change time");

    // A second run finds nothing left: idempotent.
    let again = run(&app, json!({})).await;
    assert_eq!(again["total"], 0, "{again}");
    assert_eq!(statuses(&app).await, expected());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_reports_the_changes_and_makes_none() {
    let app = app_with_fixture().await;
    let [page, ..] = caches(&app).await;
    let before = statuses(&app).await;

    let result = run(&app, json!({ "dryRun": true })).await;
    assert_eq!(result["dryRun"], true, "{result}");
    assert_eq!(
        result["wouldChange"],
        json!({ "activeToArchived": 2, "archivedToExpired": 1, "activeToExpired": 1 }),
        "{result}"
    );
    assert_eq!(
        result["sample"],
        json!(["arch_expire", "starts_only", "to_archive", "to_expire"])
    );
    assert_eq!(statuses(&app).await, before, "a dry run changed events");
    assert_eq!(redis_get(&app, &page).await.as_deref(), Some("cached"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flag_that_is_not_a_boolean_fails_the_task_naming_it_and_changes_nothing() {
    let app = app_with_fixture().await;
    let before = statuses(&app).await;
    let id = enqueue(&app, &spec(), json!({ "dryRun": "yes" })).await;
    let rec = app.wait_for(id, TaskStatus::Failed).await;
    let error = rec.error.unwrap().to_string();
    assert!(
        error.contains("invalid_params") && error.contains("dryRun"),
        "{error}"
    );
    assert_eq!(rec.attempts, 1);
    assert_eq!(statuses(&app).await, before);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_keeps_a_second_run_out_and_force_enters() {
    let app = app_with_fixture().await;
    let lock = lock_key(&app);
    // Another run (another task) holds the lock.
    redis_set(&app, &lock, "another-run").await;
    let before = statuses(&app).await;

    let skipped = run(&app, json!({})).await;
    assert_eq!(skipped["skipped"], "locked", "{skipped}");
    assert_eq!(
        statuses(&app).await,
        before,
        "a locked-out run changed events"
    );

    let forced = run(&app, json!({ "force": true })).await;
    assert_eq!(forced["lock"], "forced", "{forced}");
    assert_eq!(forced["total"], 4, "{forced}");
    assert_eq!(statuses(&app).await, expected());
    assert_eq!(
        redis_get(&app, &lock).await.as_deref(),
        Some("another-run"),
        "a forced run must not delete the other run's lock"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_interrupted_between_batches_is_finished_by_its_retry() {
    // No worker yet: the task waits while we play the attempt that crashed.
    let app = TestApp::spawn().await;
    let events = 2 * landing_ttl::BATCH + 200;
    sqlx::query(
        "INSERT INTO events (id, name, ends_at) \
         SELECT 'bulk_' || lpad(i::text, 5, '0'), 'bulk', now() - interval '40 days' \
         FROM generate_series(1, $1) i",
    )
    .bind(events)
    .execute(&app.pool)
    .await
    .unwrap();
    let id = enqueue(&app, &spec(), json!({})).await;
    // The crashed attempt committed one batch and died holding the lock (token = task id).
    let mut tx = app.pool.begin().await.unwrap();
    let (_, first) =
        jobs::landing::apply_batch(&mut tx, chrono::Utc::now(), 30, landing_ttl::BATCH)
            .await
            .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(first as i64, landing_ttl::BATCH);
    redis_set(&app, &lock_key(&app), &id.to_string()).await;

    app.add_worker(&[queues::MAINTENANCE]);
    let rec = app.wait_for(id, TaskStatus::Completed).await;
    let result = rec.result.unwrap();
    assert_eq!(
        result["lock"], "held",
        "the retry takes its own lock over: {result}"
    );
    assert_eq!(
        result["transitions"]["activeToArchived"].as_i64(),
        Some(events - landing_ttl::BATCH),
        "only what the crashed attempt left is moved: {result}"
    );
    assert_eq!(result["batches"], 2, "{result}");
    let archived: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE landing_status = 'archived'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(archived, events);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_run_once_landing_ttl_dry_run_prints_what_would_change() {
    let app = app_with_fixture().await;
    let before = statuses(&app).await;
    let out = tokio::process::Command::new(testkit::binary("worker"))
        .args(["run-once", "landing-ttl", "--dry-run", "--timeout", "60"])
        .env("DATABASE_URL", &app.config.database_url)
        .env("REDIS_URL", &app.redis_url)
        .env("REDIS_PREFIX", app.keys.prefix())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON line in {stdout}"));
    assert_eq!(printed["status"], "completed", "{printed}");
    assert_eq!(printed["result"]["dryRun"], true, "{printed}");
    assert_eq!(printed["result"]["total"], 4, "{printed}");
    assert_eq!(statuses(&app).await, before);
    app.stop().await;
}

/// Runs the worker binary with one bad setting and returns (exit code, output).
async fn worker_with(var: &str, value: &str) -> (Option<i32>, String) {
    let out = tokio::process::Command::new(testkit::binary("worker"))
        .args(["migrate"])
        .env(var, value)
        // Were the setting accepted, the worker would fail later on this database, with
        // another exit code.
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")
        .env("LOG_FORMAT", "text")
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), out)
        .await
        .expect("the worker stops")
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_landing_settings_stop_the_worker_naming_the_variable() {
    for (var, value) in [
        ("LANDING_JOB_HOUR", "24"),
        ("LANDING_JOB_MINUTE", "60"),
        ("LANDING_JOB_MINUTE", "soon"),
        ("LANDING_TTL_DEFAULT_DAYS", "thirty"),
        ("QUEUE_METRICS_INTERVAL_SECONDS", "0"),
        ("REDEMPTION_AUDIT_RETENTION_DAYS", "0"),
    ] {
        let (code, text) = worker_with(var, value).await;
        assert_eq!(code, Some(2), "{var}={value}: {text}");
        assert!(text.contains(var), "{var}={value}: {text}");
    }
    let (code, text) = tokio::process::Command::new(testkit::binary("worker"))
        .args(["run-once", "kpi-refresh", "--force"])
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")
        .output()
        .await
        .map(|o| {
            (
                o.status.code(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        })
        .unwrap();
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("landing-ttl only"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_is_renewed_while_held_released_by_its_holder_only_and_noticed_when_lost() {
    use jobs::redis_lock::HeldLock;
    let app = TestApp::spawn().await;
    let key = format!("{}:lock:test", app.keys.prefix());
    let ttl = Duration::from_millis(300);

    let lock = HeldLock::acquire(&app.redis, &key, "run-a", ttl)
        .await
        .unwrap()
        .expect("a free lock is taken");
    assert!(
        HeldLock::acquire(&app.redis, &key, "run-b", ttl)
            .await
            .unwrap()
            .is_none(),
        "a second holder is refused"
    );
    // Three TTLs later the renewal has kept it.
    tokio::time::sleep(ttl * 3).await;
    assert_eq!(redis_get(&app, &key).await.as_deref(), Some("run-a"));
    assert!(!lock.is_lost());
    assert!(lock.release().await.unwrap());
    assert!(redis_get(&app, &key).await.is_none());

    // Taken by someone else while held: noticed at the next renewal, and not deleted.
    let lock = HeldLock::acquire(&app.redis, &key, "run-a", ttl)
        .await
        .unwrap()
        .unwrap();
    redis_set(&app, &key, "run-b").await;
    tokio::time::sleep(ttl).await;
    assert!(lock.is_lost());
    assert!(!lock.release().await.unwrap());
    assert_eq!(redis_get(&app, &key).await.as_deref(), Some("run-b"));
}

/// The advisory lock the crash test's trigger waits for (unlike any other test's).
const GATE: i64 = 1_330_013;

/// A worker process SIGKILLed while its run is inside the second batch (held there by a
/// test trigger): the first batch stays, the second rolls back, and the task's next attempt,
/// on another process, takes the dead run's lock over and moves exactly what is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_mid_run_loses_nothing_and_the_next_attempt_finishes_the_rest() {
    let app = TestApp::spawn().await;
    let events = 2 * landing_ttl::BATCH + 200;
    sqlx::query(
        "INSERT INTO events (id, name, ends_at) \
         SELECT 'bulk_' || lpad(i::text, 5, '0'), 'bulk', now() - interval '40 days' \
         FROM generate_series(1, $1) i",
    )
    .bind(events)
    .execute(&app.pool)
    .await
    .unwrap();
    // Any update after the first batch waits for the advisory lock GATE, which the test holds.
    sqlx::raw_sql(
        &"CREATE FUNCTION hold_second_batch() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF (SELECT count(*) FROM events WHERE landing_status = 'archived') > 500 THEN
                 PERFORM pg_advisory_xact_lock(GATE_KEY);
             END IF;
             RETURN NULL;
         END $$;
         CREATE TRIGGER hold_second_batch AFTER UPDATE ON events
             FOR EACH STATEMENT EXECUTE FUNCTION hold_second_batch();"
            .replace("GATE_KEY", &GATE.to_string()),
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let mut gate = app.pool.acquire().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(GATE)
        .execute(&mut *gate)
        .await
        .unwrap();

    let mut first = testkit::spawn_worker_process(&app, "maintenance", 2);
    let id = enqueue(&app, &spec(), json!({})).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        // Other tests' migrations wait on sqlx's advisory lock too: match ours exactly.
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
             AND classid = 0 AND objid = $1 AND objsubid = 1 \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .bind(GATE)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the run never reached its second batch"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.start_kill().unwrap(); // SIGKILL
    first.wait().await.unwrap();
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(GATE)
        .execute(&mut *gate)
        .await
        .unwrap();
    drop(gate);
    sqlx::raw_sql("DROP TRIGGER hold_second_batch ON events")
        .execute(&app.pool)
        .await
        .unwrap();
    // The dead process's lock is still there (its TTL has not run out).
    assert_eq!(redis_get(&app, &lock_key(&app)).await, Some(id.to_string()));

    let mut second = testkit::spawn_worker_process(&app, "maintenance", 2);
    let rec = app.wait_finished(id, Duration::from_secs(40)).await;
    second.start_kill().unwrap();
    let _ = second.wait().await;
    assert_eq!(rec.status(), TaskStatus::Completed, "{:?}", rec.error);
    assert_eq!(
        rec.attempts, 2,
        "the killed attempt counts, the second completes"
    );
    let result = rec.result.unwrap();
    assert_eq!(result["lock"], "held", "{result}");
    assert_eq!(
        result["transitions"]["activeToArchived"].as_i64(),
        Some(events - landing_ttl::BATCH),
        "the committed first batch is not moved again: {result}"
    );
    let archived: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE landing_status = 'archived'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(archived, events);
    assert!(redis_get(&app, &lock_key(&app)).await.is_none(), "released");
}
