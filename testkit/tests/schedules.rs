//! Durable schedules (issue 13): one task per tick across replicas with no leader, catch-up
//! by policy after a stop, pause/resume and edits without a restart, configurations that do
//! not fight, and the operator routes. The clock is pushed by hand through `Ticker::pass`.

use std::time::Duration;

use axum::http::StatusCode;
use chrono::{DateTime, TimeZone, Utc};
use engine::{
    enqueue::Enqueuer,
    schedule::{store, Cadence, CatchUp, SchedulePatch, ScheduleSpec, Ticker},
    KindInfo, TaskStatus,
};
use jobs::{kinds::noop::Noop, queues, testing::TestEnv};
use serde_json::{json, Value};
use testkit::{fixtures::transport, TestApp, ADMIN};
use uuid::Uuid;

/// A minute boundary well in the past, so ticks the test pushes through are "due".
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap()
}

fn minutes(n: i64) -> chrono::Duration {
    chrono::Duration::minutes(n)
}

fn ticker(env: &TestEnv) -> Ticker {
    let enqueuer = Enqueuer::new(env.pool.clone(), transport(env), env.config.task_ttl);
    Ticker::new(env.pool.clone(), enqueuer, [KindInfo::of::<Noop>()])
}

fn every_minute(id: &str) -> ScheduleSpec {
    ScheduleSpec::new(id, KindInfo::of::<Noop>(), Cadence::interval(60).unwrap())
}

async fn ticks_of(env: &TestEnv, id: &str) -> Vec<(String, i64)> {
    sqlx::query_as(
        "SELECT params->>'tick', count(*) FROM tasks WHERE requester = 'cron' \
         AND params->>'scheduleId' = $1 GROUP BY 1 ORDER BY 1",
    )
    .bind(id)
    .fetch_all(&env.pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_create_one_task_per_tick() {
    let env = TestEnv::new().await;
    store::upsert_config(&env.pool, &[every_minute("every_minute")], t0())
        .await
        .unwrap();
    let replicas = [ticker(&env), ticker(&env), ticker(&env)];
    for step in 1..=5 {
        // The three replicas pass at the same instant, a few seconds after each tick.
        let now = t0() + minutes(step) + chrono::Duration::seconds(2);
        let (a, b, c) = tokio::join!(
            replicas[0].pass(now),
            replicas[1].pass(now),
            replicas[2].pass(now)
        );
        let created =
            a.unwrap().created.len() + b.unwrap().created.len() + c.unwrap().created.len();
        assert_eq!(created, 1, "one task for the tick of step {step}");
    }
    let ticks = ticks_of(&env, "every_minute").await;
    assert_eq!(ticks.len(), 5, "{ticks:?}");
    assert!(ticks.iter().all(|(_, n)| *n == 1), "{ticks:?}");
    let row = store::list(&env.pool).await.unwrap().remove(0);
    assert_eq!(row.next_run_at, t0() + minutes(6));
    assert_eq!(row.last_run.tick, Some(t0() + minutes(5)));
    assert_eq!(row.last_run.status, Some(TaskStatus::Pending));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_three_missed_ticks_skip_runs_once_and_all_runs_three_times() {
    let env = TestEnv::new().await;
    store::upsert_config(
        &env.pool,
        &[
            every_minute("skipper"),
            every_minute("catcher").catch_up(CatchUp::All),
        ],
        t0(),
    )
    .await
    .unwrap();
    let replica = ticker(&env);
    let first = replica.pass(t0() + minutes(1)).await.unwrap();
    assert_eq!(first.created.len(), 2, "one tick each: {first:?}");
    // Every replica stopped across the ticks of minutes 2, 3 and 4.
    let back = replica
        .pass(t0() + minutes(4) + chrono::Duration::seconds(30))
        .await
        .unwrap();
    let of = |id: &str| back.created.iter().filter(|(s, _, _)| s == id).count();
    assert_eq!(of("skipper"), 1, "skip: one run for the missed ticks");
    assert_eq!(of("catcher"), 3, "all: one run per missed tick");
    assert_eq!(back.skipped, 2, "skip left two ticks out");
    let skipped_run: Value = sqlx::query_scalar(
        "SELECT params FROM tasks WHERE params->>'scheduleId' = 'skipper' \
         ORDER BY created_at DESC LIMIT 1",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(skipped_run["missedTicks"], 2, "{skipped_run}");
    assert_eq!(ticks_of(&env, "catcher").await.len(), 4);
    // Nothing more is due until the next tick.
    let again = replica
        .pass(t0() + minutes(4) + chrono::Duration::seconds(40))
        .await
        .unwrap();
    assert!(again.created.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catching_up_is_bounded_to_the_latest_ticks() {
    let env = TestEnv::new().await;
    let mut spec = every_minute("bounded").catch_up(CatchUp::All);
    spec.max_catch_up = 5;
    store::upsert_config(&env.pool, &[spec], t0())
        .await
        .unwrap();
    // A night away: 600 missed ticks, five run (the latest), the rest counted.
    let pass = ticker(&env).pass(t0() + minutes(600)).await.unwrap();
    assert_eq!(pass.created.len(), 5);
    assert_eq!(pass.skipped, 595);
    assert_eq!(pass.created.last().unwrap().1, t0() + minutes(600));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_and_a_new_cadence_take_effect_without_a_restart() {
    let env = TestEnv::new().await;
    store::upsert_config(&env.pool, &[every_minute("steered")], t0())
        .await
        .unwrap();
    let replica = ticker(&env);
    let pause = |paused| SchedulePatch {
        paused: Some(paused),
        ..Default::default()
    };
    store::update(&env.pool, "steered", &pause(true), t0())
        .await
        .unwrap();
    let paused = replica.pass(t0() + minutes(3)).await.unwrap();
    assert!(paused.created.is_empty(), "a paused schedule does not run");
    let resumed = store::update(&env.pool, "steered", &pause(false), t0() + minutes(3))
        .await
        .unwrap();
    assert_eq!(
        resumed.next_run_at,
        t0() + minutes(4),
        "resumed from the next tick"
    );
    assert_eq!(resumed.source, "operator");
    assert_eq!(
        replica.pass(t0() + minutes(4)).await.unwrap().created.len(),
        1,
        "ticks missed while paused are not run"
    );
    // Every 5 minutes from now on, as a cron expression.
    let edited = store::update(
        &env.pool,
        "steered",
        &SchedulePatch {
            cron: Some("*/5 * * * *".into()),
            ..Default::default()
        },
        t0() + minutes(4),
    )
    .await
    .unwrap();
    assert_eq!(edited.next_run_at, t0() + minutes(5));
    assert!(replica.pass(t0() + minutes(9)).await.unwrap().created.len() == 1);
    assert!(replica
        .pass(t0() + minutes(9) + chrono::Duration::seconds(59))
        .await
        .unwrap()
        .created
        .is_empty());
    assert_eq!(
        replica
            .pass(t0() + minutes(10))
            .await
            .unwrap()
            .created
            .len(),
        1
    );

    let bad = store::update(
        &env.pool,
        "steered",
        &SchedulePatch {
            time_zone: Some("Mars/Olympus".into()),
            ..Default::default()
        },
        t0(),
    )
    .await;
    assert!(
        matches!(&bad, Err(store::PatchError::Invalid(e)) if e.field == "timeZone"),
        "{bad:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_change_survives_restarts_and_replicas_with_other_configs_do_not_fight() {
    let env = TestEnv::new().await;
    let old = every_minute("shared");
    let new = ScheduleSpec::new(
        "shared",
        KindInfo::of::<Noop>(),
        Cadence::interval(120).unwrap(),
    );
    assert_eq!(
        store::upsert_config(&env.pool, std::slice::from_ref(&old), t0())
            .await
            .unwrap(),
        vec!["shared".to_string()]
    );
    store::update(
        &env.pool,
        "shared",
        &SchedulePatch {
            paused: Some(true),
            ..Default::default()
        },
        t0(),
    )
    .await
    .unwrap();
    // A restart with the same configuration leaves the operator's pause alone.
    assert!(
        store::upsert_config(&env.pool, std::slice::from_ref(&old), t0())
            .await
            .unwrap()
            .is_empty()
    );
    let row = store::list(&env.pool).await.unwrap().remove(0);
    assert!(row.paused);
    assert_eq!(row.source, "operator");
    // A deploy with a new configuration wins once...
    assert_eq!(
        store::upsert_config(&env.pool, std::slice::from_ref(&new), t0())
            .await
            .unwrap(),
        vec!["shared".to_string()]
    );
    // ...and an old replica restarting afterwards does not undo it, nor does the new one.
    for spec in [old, new] {
        assert!(store::upsert_config(&env.pool, &[spec], t0())
            .await
            .unwrap()
            .is_empty());
    }
    let row = store::list(&env.pool).await.unwrap().remove(0);
    assert_eq!(
        (row.interval_seconds, row.paused, row.source.as_str()),
        (Some(120), false, "config")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operators_list_change_and_run_schedules_over_http() {
    let app = TestApp::builder()
        .workers(&[queues::MAINTENANCE])
        .spawn()
        .await;
    // The worker upserted the built-in schedules at start.
    let mut listed = Value::Null;
    for _ in 0..50 {
        let (status, body) = app.call("GET", "/admin/schedules", Some(ADMIN), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["data"].as_array().is_some_and(|d| d.len() >= 2) {
            listed = body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ids: Vec<&str> = listed["data"]
        .as_array()
        .expect("the built-in schedules")
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"kpi_refresh") && ids.contains(&"task_cleanup"),
        "{ids:?}"
    );

    for (body, field) in [
        (json!({"cron": "not a cron"}), "cron"),
        (json!({"cron": "0 3 * * *", "intervalSeconds": 60}), "cron"),
        (
            json!({"timeZone": "Mars/Olympus", "cron": "0 3 * * *"}),
            "timeZone",
        ),
        (json!({"intervalSeconds": 0}), "intervalSeconds"),
        (json!({"catchUp": "sometimes"}), "catchUp"),
        (json!({"paused": "yes"}), "paused"),
        (json!({"every": "day"}), "every"),
    ] {
        let (status, reply) = app
            .call(
                "PATCH",
                "/admin/schedules/kpi_refresh",
                Some(ADMIN),
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} → {reply}");
        assert!(
            reply["error"]["fields"][field].is_string(),
            "{body} names {field}: {reply}"
        );
    }
    let (status, _) = app
        .call(
            "PATCH",
            "/admin/schedules/nope",
            Some(ADMIN),
            Some(json!({"paused": true})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, changed) = app
        .call(
            "PATCH",
            "/admin/schedules/task_cleanup",
            Some(ADMIN),
            Some(json!({"cron": "30 3 * * *", "timeZone": "America/Mexico_City", "paused": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(
        (
            changed["cron"].as_str(),
            changed["paused"].as_bool(),
            changed["source"].as_str()
        ),
        (Some("30 3 * * *"), Some(true), Some("operator"))
    );
    let next: DateTime<Utc> = changed["nextRunAt"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        next.format("%H:%M").to_string(),
        "09:30",
        "03:30 in Mexico City"
    );

    let (status, run) = app
        .call(
            "POST",
            "/admin/schedules/task_cleanup/run",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{run}");
    let task: Uuid = run["taskId"].as_str().unwrap().parse().unwrap();
    let rec = app.wait_for(task, TaskStatus::Completed).await;
    assert_eq!(rec.params["trigger"], "manual");
    let (_, listed) = app.call("GET", "/admin/schedules", Some(ADMIN), None).await;
    let cleanup = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "task_cleanup")
        .unwrap()
        .clone();
    assert_eq!(cleanup["lastRun"]["taskId"], json!(task));
    assert_eq!(cleanup["lastRun"]["status"], "completed");
    assert_eq!(cleanup["paused"], true, "a run now does not resume it");
    let (status, _) = app
        .call("POST", "/admin/schedules/nope/run", Some(ADMIN), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_builtin_schedules_come_from_the_configuration() {
    let env = TestEnv::new().await;
    let mut config = env.config.clone();
    config.landing.hour = 4;
    config.landing.minute = 30;
    config.schedule_time_zone = "America/Mexico_City".into();
    let specs = jobs::schedules::builtin(&config).unwrap();
    let ids: Vec<&str> = specs.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "kpi_refresh",
            "task_cleanup",
            "landing_ttl",
            "reservation_release",
            "expire_old_redemptions",
            "cleanup_redemption_audit_log"
        ]
    );
    store::upsert_config(&env.pool, &specs, t0()).await.unwrap();
    let landing = store::list(&env.pool)
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.id == "landing_ttl")
        .unwrap();
    assert_eq!(landing.cron.as_deref(), Some("30 4 * * *"));
    // 04:30 in Mexico City is 10:30 UTC.
    assert_eq!(
        landing.next_run_at,
        t0() - minutes(90) + chrono::Duration::days(1)
    );
    config.schedule_time_zone = "Mars/Olympus".into();
    assert_eq!(
        jobs::schedules::builtin(&config).unwrap_err().name,
        "SCHEDULE_TIME_ZONE"
    );
}

/// `worker schedules <args>` against the test's schema: (exit code, stdout).
async fn schedules_cli(env: &TestEnv, args: &[&str]) -> (Option<i32>, String) {
    let out = tokio::process::Command::new(testkit::binary("worker"))
        .arg("schedules")
        .args(args)
        .env("DATABASE_URL", &env.config.database_url)
        .env("REDIS_URL", &env.redis_url)
        .env("REDIS_PREFIX", env.keys.prefix())
        .env("RUST_LOG", "warn")
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .expect("the command ends")
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_cli_lists_pauses_resumes_and_runs_schedules() {
    let env = TestEnv::new().await;
    let (code, listed) = schedules_cli(&env, &["list"]).await;
    assert_eq!(code, Some(0), "{listed}");
    let ids: Vec<String> = listed
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(ids.contains(&"landing_ttl".to_string()), "{ids:?}");

    let (code, paused) = schedules_cli(&env, &["pause", "landing_ttl"]).await;
    assert_eq!(code, Some(0));
    let paused: Value = serde_json::from_str(paused.trim()).unwrap();
    assert_eq!(
        (paused["paused"].as_bool(), paused["source"].as_str()),
        (Some(true), Some("operator"))
    );
    let (code, resumed) = schedules_cli(&env, &["resume", "landing_ttl"]).await;
    assert_eq!(code, Some(0));
    assert_eq!(
        serde_json::from_str::<Value>(resumed.trim()).unwrap()["paused"],
        false
    );

    let (code, ran) = schedules_cli(&env, &["run", "reservation_release"]).await;
    assert_eq!(code, Some(0), "{ran}");
    let task: Uuid = serde_json::from_str::<Value>(ran.trim()).unwrap()["taskId"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(env.task(task).await.requester, "cli");
    for args in [["pause", "nope"], ["run", "nope"]] {
        assert_eq!(schedules_cli(&env, &args).await.0, Some(1), "{args:?}");
    }
}
