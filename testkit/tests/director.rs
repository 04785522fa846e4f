//! Director: payments, the ledger read, the reports against a hand-computed fixture, the
//! report cache, the KPI refresh job and its cron.

use std::time::Duration;

use axum::http::{Request, StatusCode};
use engine::TaskStatus;
use jobs::queues as queue;
use serde_json::{json, Value};
use testkit::{fixtures::*, *};

const WAIT: Duration = Duration::from_secs(20);

async fn get(app: &TestApp, path: &str) -> (StatusCode, Value, Option<String>) {
    let req = Request::builder()
        .uri(path)
        .header("authorization", format!("Bearer {DEMO}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = app.request(req).await;
    let status = resp.status();
    let cache = resp
        .headers()
        .get("x-cache")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 22)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        cache,
    )
}

fn metric(body: &Value, name: &str) -> Value {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("metric {name} missing in {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overview_matches_the_fixture_with_filters_at_the_edges() {
    let app = TestApp::spawn().await;
    director_fixture(&app).await;
    for path in ["/director/reports/overview", "/director/overview"] {
        let (status, body, _) = get(&app, path).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(metric(&body, "ticketsEquivalentDelivered")["value"], 175);
        assert_eq!(metric(&body, "assignedValueCents")["value"], 70_000);
        assert_eq!(metric(&body, "paymentsAppliedCents")["value"], 55_000);
        assert_eq!(metric(&body, "openDebtCents")["value"], 15_000);
        assert_eq!(metric(&body, "activeOrganizers")["value"], 2);
        assert_eq!(
            metric(&body, "guestsByStatus")["breakdown"],
            json!([{"status":"confirmed","count":2},{"status":"pending","count":1},{"status":"scanned","count":1}])
        );
        assert_eq!(
            metric(&body, "deliveriesByStatus")["breakdown"],
            json!([{"status":"delivered","count":1},{"status":"failed","count":1}])
        );
        assert!(body["meta"]["generatedAt"].is_string());
        assert!(body["requestId"].is_string());
    }
    let (_, nov, _) = get(
        &app,
        "/director/reports/overview?from=2025-11-01&to=2025-11-30",
    )
    .await;
    assert_eq!(metric(&nov, "ticketsEquivalentDelivered")["value"], 50);
    assert_eq!(
        metric(&nov, "paymentsAppliedCents")["value"],
        40_000,
        "the payment on the first day counts"
    );
    assert_eq!(metric(&nov, "openDebtCents")["value"], -30_000);
    assert_eq!(nov["meta"]["from"], "2025-11-01");
    let (_, day, _) = get(
        &app,
        "/director/reports/overview?from=2025-12-20&to=2025-12-20",
    )
    .await;
    assert_eq!(
        metric(&day, "assignedValueCents")["value"],
        5_000,
        "a one-day window includes that day"
    );
    assert_eq!(metric(&day, "activeOrganizers")["value"], 1);
    let (_, usd, _) = get(&app, "/director/reports/overview?currency=usd").await;
    assert_eq!(
        metric(&usd, "assignedValueCents")["value"],
        700,
        "currencies are never summed together"
    );
    let (_, st, _) = get(
        &app,
        "/director/reports/overview?status=confirmed,delivered&eventId=ev_demo",
    )
    .await;
    assert_eq!(
        metric(&st, "guestsByStatus")["breakdown"],
        json!([{"status":"confirmed","count":2}])
    );
    assert_eq!(
        metric(&st, "deliveriesByStatus")["breakdown"],
        json!([{"status":"delivered","count":1}])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_organizers_and_tickets_usage_rank_and_paginate() {
    let app = TestApp::spawn().await;
    director_fixture(&app).await;
    let (status, body, _) = get(
        &app,
        "/director/reports/top-organizers?sort=tickets&dir=desc",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"][0]["organizerId"], "org_demo");
    assert_eq!(body["data"][0]["ticketsEquivalent"], 125);
    assert_eq!(body["data"][0]["assignedValueCents"], 60_000);
    assert_eq!(body["data"][0]["lastActivityAt"], "2025-12-20T10:00:00Z");
    assert_eq!(body["data"][1]["organizerId"], "org_acme");
    assert_eq!(
        body["data"][1]["lastActivityAt"], "2025-12-01T10:00:00Z",
        "a payment is activity"
    );
    assert_eq!(
        (body["meta"]["total"].clone(), body["meta"]["pages"].clone()),
        (json!(2), json!(1))
    );

    let (_, p2, _) = get(&app, "/director/reports/top-organizers?page=2&pageSize=1").await;
    assert_eq!(p2["data"].as_array().unwrap().len(), 1);
    assert_eq!(p2["data"][0]["organizerId"], "org_acme");
    assert_eq!(
        (p2["meta"]["total"].clone(), p2["meta"]["pages"].clone()),
        (json!(2), json!(2))
    );
    let (_, past, _) = get(&app, "/director/reports/top-organizers?page=3&pageSize=1").await;
    assert_eq!(
        past["data"],
        json!([]),
        "past the end: empty page, same totals"
    );
    assert_eq!(past["meta"]["total"], 2);
    let (_, asc, _) = get(&app, "/director/reports/top-organizers?sort=amount&dir=asc").await;
    assert_eq!(asc["data"][0]["organizerId"], "org_acme");
    let (_, limited, _) = get(&app, "/director/reports/top-organizers?limit=1").await;
    assert_eq!(limited["meta"]["total"], 1);
    let (_, premium, _) = get(&app, "/director/reports/top-organizers?eventType=premium").await;
    assert_eq!(premium["data"][0]["ticketsEquivalent"], 20);

    let (status, usage, _) = get(&app, "/director/reports/tickets-usage?sort=tickets").await;
    assert_eq!(status, StatusCode::OK, "{usage}");
    let ids: Vec<&str> = usage["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["eventId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["ev_demo", "ev_acme", "ev_premium"]);
    assert_eq!(usage["data"][0]["ticketsAssigned"], 105);
    assert_eq!(usage["data"][0]["assignedValueCents"], 40_000);
    assert_eq!(usage["data"][0]["eventName"], "Demo Fest");
    let (_, prem, _) = get(
        &app,
        "/director/reports/tickets-usage?eventType=premium&from=2025-09-01&to=2025-10-31",
    )
    .await;
    assert_eq!(
        prem["data"],
        json!([{
            "eventId": "ev_premium", "eventName": "Premium Night", "eventType": "premium", "ticketsAssigned": 10,
            "ticketsEquivalent": 20, "assignedValueCents": 20000, "lastMovementAt": "2025-10-15T10:00:00Z"
        }])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debt_aging_pays_oldest_first_and_shows_credit_as_no_debt() {
    let app = TestApp::spawn().await;
    director_fixture(&app).await;
    let (status, body, _) = get(&app, "/director/reports/debt-aging?to=2025-12-31").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // org_demo: 40000 paid settles #1 (35000) and 5000 of #2; #2 keeps 15000 (77 days), #4 5000 (11 days).
    // org_acme: paid more than assigned, nothing open.
    assert_eq!(
        body["data"],
        json!([
            {"bucket": "0-30", "amountCents": 5000, "count": 1},
            {"bucket": "31-60", "amountCents": 0, "count": 0},
            {"bucket": "61-90", "amountCents": 15000, "count": 1},
            {"bucket": ">90", "amountCents": 0, "count": 0},
        ])
    );
    let (_, acme, _) = get(
        &app,
        "/director/reports/debt-aging?to=2025-12-31&organizerId=org_acme",
    )
    .await;
    assert!(acme["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|b| b["amountCents"] == 0));

    let (status, ledger, _) = get(&app, "/director/organizers/org_demo/ledger?pageSize=2").await;
    assert_eq!(status, StatusCode::OK, "{ledger}");
    assert_eq!(
        ledger["data"][0]["createdAt"], "2025-12-20T10:00:00Z",
        "newest first"
    );
    assert_eq!(ledger["meta"]["total"], 5);
    assert_eq!(ledger["meta"]["pages"], 3);
    assert_eq!(ledger["totals"]["assignedCents"], 60_000);
    assert_eq!(ledger["totals"]["paidCents"], 40_000);
    assert_eq!(ledger["totals"]["debtCents"], 20_000);
    assert_eq!(ledger["totals"]["ticketsEquivalent"], 125);
    assert_eq!(
        ledger["balances"].as_array().unwrap().len(),
        2,
        "MXN and USD"
    );
    let (_, acme, _) = get(&app, "/director/organizers/org_acme/ledger").await;
    assert_eq!(
        acme["totals"]["debtCents"], -5_000,
        "overpayment shows as credit"
    );
    let (status, _, _) = get(&app, "/director/organizers/org_nope/ledger").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_report_filters_are_400_naming_the_parameter() {
    let app = TestApp::spawn().await;
    for (query, param) in [
        ("from=2025-13-01", "from"),
        ("to=yesterday", "to"),
        ("from=2025-12-02&to=2025-12-01", "from"),
        ("sort=price", "sort"),
        ("dir=up", "dir"),
        ("pageSize=0", "pageSize"),
        ("pageSize=501", "pageSize"),
        ("page=-1", "page"),
        ("status=lost", "status"),
        ("eventType=vip", "eventType"),
        ("currency=pesos", "currency"),
        ("organizerId=bad%20id", "organizerId"),
        ("limit=0", "limit"),
    ] {
        for report in ["overview", "top-organizers", "debt-aging", "tickets-usage"] {
            let (status, body, _) = get(&app, &format!("/director/reports/{report}?{query}")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{report}?{query}: {body}");
            assert!(
                body["error"]["fields"][param].is_string(),
                "{report}?{query}: {body}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn payments_write_the_ledger_invalidate_caches_and_trigger_one_refresh() {
    let app = TestApp::builder()
        .core(|c| c.kpi_refresh_coalesce = Duration::from_secs(1))
        .spawn()
        .await;
    director_fixture(&app).await;
    app.add_worker(&[queue::ASSIGNMENTS, queue::MAINTENANCE]);

    let (_, before, first) = get(&app, "/director/reports/overview").await;
    assert_eq!(first.as_deref(), Some("miss"));
    let (_, again, second) = get(&app, "/director/reports/overview").await;
    assert_eq!(second.as_deref(), Some("hit"));
    assert_eq!(
        metric(&before, "paymentsAppliedCents"),
        metric(&again, "paymentsAppliedCents")
    );

    let mut ids = Vec::new();
    for body in [
        json!({"organizerId":"org_demo","amount":1500,"currency":"mxn"}),
        json!({"organizerId":"org_demo","amountCents":250}),
    ] {
        let (status, resp) = app.payment(body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{resp}");
        ids.push(
            resp["taskId"]
                .as_str()
                .unwrap()
                .parse::<uuid::Uuid>()
                .unwrap(),
        );
    }
    let rec = app.wait_finished(ids[0], WAIT).await;
    assert_eq!(rec.status(), TaskStatus::Completed, "{:?}", rec.error);
    let result = rec.result.unwrap();
    assert_eq!(result["entry"]["entryType"], "payment");
    assert_eq!(result["entry"]["amountCents"], 150_000);
    assert_eq!(result["entry"]["currency"], "MXN");
    app.wait_finished(ids[1], WAIT).await;

    // The writes made the cached overview stale at once, and the reports read the roll-ups
    // the ledger trigger moved in the writing transaction: no refresh needed to see them…
    let (_, after, after_write) = get(&app, "/director/reports/overview").await;
    assert_eq!(after_write.as_deref(), Some("miss"));
    assert_eq!(
        metric(&after, "paymentsAppliedCents")["value"],
        55_000 + 150_000 + 250
    );
    // …and they scheduled one coalesced refresh of the KPI views, which runs.
    let deadline = tokio::time::Instant::now() + WAIT;
    let refreshes = loop {
        let done: Vec<(String,)> = sqlx::query_as(
            "SELECT status FROM tasks WHERE kind = 'kpi_refresh' AND requester = 'system'",
        )
        .fetch_all(&app.pool)
        .await
        .unwrap();
        if !done.is_empty() && done.iter().all(|(s,)| s == "completed") {
            break done.len();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the coalesced refresh never ran: {done:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        (1..=2).contains(&refreshes),
        "a burst of writes shares a refresh, got {refreshes}"
    );
    let paid: i64 = sqlx::query_scalar(
        "SELECT paid_cents FROM mv_kpi_deuda_abierta WHERE organizer_id = 'org_demo' AND currency = 'MXN'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(paid, 40_000 + 150_000 + 250, "the view was refreshed");
    let (_, ledger, _) = get(&app, "/director/organizers/org_demo/ledger").await;
    assert_eq!(ledger["totals"]["paidCents"], 40_000 + 150_000 + 250);
    assert_eq!(
        ledger["totals"]["debtCents"],
        60_000 - 190_250,
        "more paid than owed: credit"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_payments_are_refused_with_the_field_named() {
    let app = TestApp::spawn().await;
    for (body, field) in [
        (json!({"organizerId":"org_demo"}), "amount"),
        (
            json!({"organizerId":"org_demo","amount":1,"amountCents":100}),
            "amount",
        ),
        (json!({"organizerId":"org_demo","amount":1.001}), "amount"),
        (json!({"organizerId":"org_demo","amount":-5}), "amount"),
        (json!({"organizerId":"org_demo","amount":0}), "amount"),
        (
            json!({"organizerId":"org_demo","amountCents":1.5}),
            "amountCents",
        ),
        (
            json!({"organizerId":"org_demo","amountCents":"100"}),
            "amountCents",
        ),
        (
            json!({"organizerId":"org_demo","amount":10,"currency":"pesos"}),
            "currency",
        ),
        (json!({"amount":10}), "organizerId"),
        (json!({"organizerId":"org_demo","amount":10,"tip":1}), "tip"),
    ] {
        let (status, resp) = app.payment(body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {resp}");
        assert!(resp["error"]["fields"][field].is_string(), "{body}: {resp}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_stay_correct_when_redis_is_down() {
    let mut redis = PrivateRedis::start().await;
    let app = TestApp::builder().redis_url(redis.url()).spawn().await;
    director_fixture(&app).await;
    redis.stop();
    let (status, body, cache) = get(&app, "/director/reports/overview").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(cache.as_deref(), Some("miss"));
    assert_eq!(metric(&body, "openDebtCents")["value"], 15_000);
    let (status, _, _) = get(&app, "/director/reports/debt-aging").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kpi_refresh_runs_once_per_cron_tick_across_three_replicas() {
    let app = TestApp::builder()
        .core(|c| c.kpi_refresh_interval = Duration::from_secs(1))
        .worker_settings(|w| w.run_schedules = true)
        .spawn()
        .await;
    director_fixture(&app).await;
    let replicas: Vec<RunningWorker> = (0..3)
        .map(|_| app.start_worker(&[queue::MAINTENANCE]))
        .collect();
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    for r in replicas {
        r.stop().await;
    }
    let per_tick: Vec<(String, i64)> = sqlx::query_as(
        "SELECT idempotency_key, count(*) FROM tasks WHERE kind = 'kpi_refresh' AND requester = 'cron' \
         GROUP BY idempotency_key ORDER BY 1",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(per_tick.len() >= 3, "several ticks passed: {per_tick:?}");
    assert!(
        per_tick.iter().all(|(_, n)| *n == 1),
        "exactly one task per tick: {per_tick:?}"
    );
    let done: Vec<(String, serde_json::Value)> = sqlx::query_as(
        "SELECT status, result FROM tasks WHERE kind = 'kpi_refresh' AND status = 'completed' LIMIT 1",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(!done.is_empty(), "the refresh ran");
    assert_eq!(done[0].1["views"].as_array().unwrap().len(), 3);
}

/// Small deterministic generator (no shared state between writers).
/// Concurrent multi-row writes may deadlock (each picks its rows in its own order); Postgres
/// then aborts one statement, which changes nothing, and the kept counts must show exactly that.
fn unless_deadlocked(r: Result<sqlx::postgres::PgQueryResult, sqlx::Error>) {
    match r {
        Ok(_) => {}
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("40P01") => {}
        Err(e) => panic!("{e}"),
    }
}

struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ledger_rollups_match_a_recomputation_after_concurrent_mixed_writes() {
    // Its own organizers and events only: every entry comes from the writers below.
    let app = TestApp::spawn().await;
    app.seed_demo().await;
    // org_r1 and org_r2 get the last bitmap place of the first 8,192-organizer chunk and the
    // first of the second (director_kpi_day, migration 8).
    sqlx::raw_sql(
        "ALTER TABLE organizers ALTER COLUMN ordinal RESTART WITH 8191;
         INSERT INTO organizers (id, name) VALUES ('org_r1', 'R1'), ('org_r2', 'R2');
         INSERT INTO events (id, organizer_id, name, type) VALUES ('ev_acme', 'org_acme', 'Acme Fest', 'standard'),
          ('ev_r1', 'org_r1', 'R1 Fest', 'standard'), ('ev_r2', 'org_r2', 'R2 Night', 'premium');",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let orgs = [
        ("org_demo", "ev_demo"),
        ("org_acme", "ev_acme"),
        ("org_r1", "ev_r1"),
        ("org_r2", "ev_r2"),
    ];
    // Six writers on four organizers: single entries (now, or back-dated up to 200 days so
    // the FIFO order is not the insert order), payments, multi-row statements over several
    // organizers, two-statement transactions (one in five rolled back), two currencies.
    let writers = (0..6u64).map(|w| {
        let pool = app.pool.clone();
        tokio::spawn(async move {
            let mut rng = Lcg(w + 1);
            for _ in 0..60 {
                let (org, ev) = orgs[rng.next(4) as usize];
                let cur = if rng.next(5) == 0 { "USD" } else { "MXN" };
                let back = if rng.next(2) == 0 { 0 } else { rng.next(200 * 24) };
                let amount = (rng.next(20) * 1_000) as i64;
                let single = "INSERT INTO director_ledger_entries (id, organizer_id, event_id, entry_type, \
                     tickets, tickets_equivalent, amount_cents, currency, task_id, created_at) \
                     VALUES (gen_random_uuid(), $1, $2, $3, $4, $4, $5, $6, gen_random_uuid(), \
                             now() - make_interval(hours => $7))";
                match rng.next(10) {
                    0..=4 => {
                        sqlx::query(single)
                            .bind(org)
                            .bind(ev)
                            .bind("assign_loan")
                            .bind(1 + rng.next(9) as i32)
                            .bind(amount)
                            .bind(cur)
                            .bind(back as i32)
                            .execute(&pool)
                            .await
                            .unwrap();
                    }
                    5..=6 => {
                        sqlx::query(single)
                            .bind(org)
                            .bind(None::<String>)
                            .bind("payment")
                            .bind(0)
                            .bind(amount * 2)
                            .bind(cur)
                            .bind(back as i32)
                            .execute(&pool)
                            .await
                            .unwrap();
                    }
                    7 => {
                        sqlx::query(
                            "INSERT INTO director_ledger_entries (id, organizer_id, event_id, entry_type, \
                                 tickets, tickets_equivalent, amount_cents, currency, task_id, created_at) \
                             SELECT gen_random_uuid(), o, CASE WHEN g % 3 = 0 THEN NULL ELSE e END, \
                                    CASE WHEN g % 3 = 0 THEN 'payment' ELSE 'assign_prepaid' END, \
                                    CASE WHEN g % 3 = 0 THEN 0 ELSE 2 END, CASE WHEN g % 3 = 0 THEN 0 ELSE 2 END, \
                                    g * $1, 'MXN', gen_random_uuid(), now() - make_interval(days => (g * $2)::int) \
                             FROM unnest($3::text[], $4::text[]) WITH ORDINALITY AS x(o, e, g)",
                        )
                        .bind(amount / 4 + 100)
                        .bind(rng.next(30) as i32)
                        .bind(orgs.iter().map(|o| o.0).collect::<Vec<_>>())
                        .bind(orgs.iter().map(|o| o.1).collect::<Vec<_>>())
                        .execute(&pool)
                        .await
                        .unwrap();
                    }
                    _ => {
                        let mut tx = pool.begin().await.unwrap();
                        for kind in ["assign_prepaid", "payment"] {
                            sqlx::query(single)
                                .bind(org)
                                .bind((kind != "payment").then_some(ev))
                                .bind(kind)
                                .bind(if kind == "payment" { 0 } else { 3 })
                                .bind(amount)
                                .bind(cur)
                                .bind(back as i32)
                                .execute(&mut *tx)
                                .await
                                .unwrap();
                            tokio::time::sleep(Duration::from_millis(rng.next(5))).await;
                        }
                        if rng.next(5) == 0 {
                            tx.rollback().await.unwrap();
                        } else {
                            tx.commit().await.unwrap();
                        }
                    }
                }
            }
        })
    });
    for w in writers.collect::<Vec<_>>() {
        w.await.unwrap();
    }
    let entries: i64 = sqlx::query_scalar("SELECT count(*) FROM director_ledger_entries")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(entries > 300, "the writers wrote: {entries}");
    let (unpaid, credit): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT COALESCE(sum(unpaid_cents), 0)::bigint FROM director_debt_day), \
                (SELECT count(*) FROM director_kpi_org_total WHERE paid_cents > assigned_cents)",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(unpaid > 0, "some debt is open");
    assert!(credit > 0, "some organizer has credit");

    // Debt aging over all organizers (maintained remainders) equals the sum of the
    // per-organizer reports (FIFO walked over each organizer's ledger), for several windows.
    let today = chrono::Utc::now().date_naive();
    for (from, to) in [
        (None, None),
        (None, Some(today - chrono::Days::new(45))),
        (
            Some(today - chrono::Days::new(100)),
            Some(today - chrono::Days::new(10)),
        ),
    ] {
        for cur in ["MXN", "USD"] {
            let mut q = jobs::domain::reports::ReportFilter::new(cur);
            q.from = from;
            q.to = to;
            let all = jobs::domain::reports::debt_aging(&app.pool, &q)
                .await
                .unwrap();
            let mut sum = vec![(0i64, 0i64); 4];
            for (org, _) in orgs {
                let mut one = q.clone();
                one.organizer_id = Some(org.to_string());
                let r = jobs::domain::reports::debt_aging(&app.pool, &one)
                    .await
                    .unwrap();
                for (i, b) in r["data"].as_array().unwrap().iter().enumerate() {
                    sum[i].0 += b["amountCents"].as_i64().unwrap();
                    sum[i].1 += b["count"].as_i64().unwrap();
                }
            }
            let got: Vec<(i64, i64)> = all["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| {
                    (
                        b["amountCents"].as_i64().unwrap(),
                        b["count"].as_i64().unwrap(),
                    )
                })
                .collect();
            assert_eq!(got, sum, "{cur} {from:?}..{to:?}");
        }
    }

    // Dated overviews (whole months from the month roll-up, the days around them from the
    // day roll-up) equal sums over the ledger itself.
    let day = |n: u64| today - chrono::Days::new(n);
    let first_of =
        |d: chrono::NaiveDate| d - chrono::Days::new(u64::from(chrono::Datelike::day(&d)) - 1);
    for (from, to) in [
        (Some(day(150)), Some(day(20))),
        (None, Some(day(40))),
        (Some(day(100)), None),
        (
            Some(first_of(day(120))),
            Some(first_of(day(30)) - chrono::Days::new(1)),
        ),
        (Some(day(12)), Some(day(3))),
    ] {
        for cur in ["MXN", "USD"] {
            let mut q = jobs::domain::reports::ReportFilter::new(cur);
            q.from = from;
            q.to = to;
            let body = jobs::domain::reports::overview(&app.pool, &q)
                .await
                .unwrap();
            let got: Vec<i64> = [
                "ticketsEquivalentDelivered",
                "assignedValueCents",
                "paymentsAppliedCents",
                "activeOrganizers",
            ]
            .iter()
            .map(|m| metric(&body, m)["value"].as_i64().unwrap())
            .collect();
            let want: (i64, i64, i64, i64) = sqlx::query_as(
                "SELECT COALESCE(sum(tickets_equivalent) FILTER (WHERE entry_type <> 'payment'), 0)::bigint, \
                        COALESCE(sum(amount_cents) FILTER (WHERE entry_type <> 'payment'), 0)::bigint, \
                        COALESCE(sum(amount_cents) FILTER (WHERE entry_type = 'payment'), 0)::bigint, \
                        count(DISTINCT organizer_id) \
                 FROM director_ledger_entries WHERE currency = $1 \
                   AND ($2::date IS NULL OR (created_at AT TIME ZONE 'UTC')::date >= $2) \
                   AND ($3::date IS NULL OR (created_at AT TIME ZONE 'UTC')::date <= $3)",
            )
            .bind(cur)
            .bind(from)
            .bind(to)
            .fetch_one(&app.pool)
            .await
            .unwrap();
            assert_eq!(
                got,
                [want.0, want.1, want.2, want.3],
                "{cur} {from:?}..{to:?}"
            );
            let mut top = q.clone();
            top.page_size = 500;
            let body = jobs::domain::reports::top_organizers(&app.pool, &top)
                .await
                .unwrap();
            let summed: i64 = body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["assignedValueCents"].as_i64().unwrap())
                .sum();
            assert_eq!(summed, want.1, "top organizers {cur} {from:?}..{to:?}");
        }
    }

    let drift = rollup_drift(&app.pool).await;
    assert!(
        drift.iter().all(|(_, n)| *n == 0),
        "maintained roll-ups differ from a recomputation: {drift:?}"
    );

    // The ledger is append-only: the roll-ups could not follow an UPDATE or a DELETE.
    for sql in [
        "UPDATE director_ledger_entries SET amount_cents = 1",
        "DELETE FROM director_ledger_entries",
    ] {
        let err = sqlx::query(sql).execute(&app.pool).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
}

/// guestsByStatus / deliveriesByStatus over all events read the per-day counts kept by the
/// triggers of migration 7. After concurrent inserts (back-dated), status changes (single and
/// batched, like sends and webhooks), deletes and rolled-back transactions, the counts equal
/// the tables, and the overview (undated and dated) equals counting the rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_counts_follow_concurrent_guest_and_delivery_writes() {
    let app = TestApp::spawn().await;
    app.seed_demo().await;
    const GUEST: [&str; 3] = ["pending", "confirmed", "scanned"];
    const DELIVERY: [&str; 5] = ["queued", "sent", "delivered", "read", "failed"];
    let writers = (0..4u64).map(|w| {
        let pool = app.pool.clone();
        tokio::spawn(async move {
            let mut rng = Lcg(w + 11);
            for i in 0..40u64 {
                let back = rng.next(90 * 24) as i32;
                let mut tx = pool.begin().await.unwrap();
                // Three guests with a delivery each, created `back` hours ago.
                sqlx::query(
                    "INSERT INTO guests (id, event_id, name, status, created_at) \
                     SELECT 'w' || $1 || '_' || $2 || '_' || g, 'ev_demo', 'G', $3, \
                            now() - make_interval(hours => $4) FROM generate_series(1, 3) g",
                )
                .bind(w as i64)
                .bind(i as i64)
                .bind(GUEST[rng.next(3) as usize])
                .bind(back)
                .execute(&mut *tx)
                .await
                .unwrap();
                sqlx::query(
                    "INSERT INTO deliveries (id, event_id, guest_id, channel, kind, status, created_at) \
                     SELECT gen_random_uuid(), 'ev_demo', 'w' || $1 || '_' || $2 || '_' || g, 'email', \
                            'invitation', 'queued', now() - make_interval(hours => $3) \
                     FROM generate_series(1, 3) g",
                )
                .bind(w as i64)
                .bind(i as i64)
                .bind(back)
                .execute(&mut *tx)
                .await
                .unwrap();
                if rng.next(6) == 0 {
                    tx.rollback().await.unwrap();
                } else {
                    tx.commit().await.unwrap();
                }
                match rng.next(5) {
                    // A batch of sends (what the batched completion does), or a webhook.
                    0 | 1 => {
                        let written = sqlx::query(
                            "UPDATE deliveries SET status = $1, updated_at = now() \
                             WHERE id IN (SELECT id FROM deliveries WHERE status = $2 LIMIT $3)",
                        )
                        .bind(DELIVERY[1 + rng.next(4) as usize])
                        .bind(DELIVERY[rng.next(3) as usize])
                        .bind(1 + rng.next(6) as i64)
                        .execute(&pool)
                        .await;
                        unless_deadlocked(written);
                    }
                    2 => {
                        let written = sqlx::query(
                            "UPDATE guests SET status = $1 WHERE id IN \
                             (SELECT id FROM guests WHERE event_id = 'ev_demo' AND id LIKE 'w%' LIMIT 2)",
                        )
                        .bind(GUEST[rng.next(3) as usize])
                        .execute(&pool)
                        .await;
                        unless_deadlocked(written);
                    }
                    // Other columns only: the counts must not move.
                    3 => {
                        let written = sqlx::query("UPDATE deliveries SET updated_at = now() WHERE guest_id LIKE $1")
                            .bind(format!("w{w}_%"))
                            .execute(&pool)
                            .await;
                        unless_deadlocked(written);
                    }
                    _ => {
                        let written = sqlx::query(
                            "WITH d AS (DELETE FROM deliveries WHERE guest_id = $1 RETURNING guest_id) \
                             DELETE FROM guests WHERE event_id = 'ev_demo' AND id = $1",
                        )
                        .bind(format!("w{w}_{}_1", rng.next(i + 1)))
                        .execute(&pool)
                        .await;
                        unless_deadlocked(written);
                    }
                }
            }
        })
    });
    for w in writers.collect::<Vec<_>>() {
        w.await.unwrap();
    }
    let deliveries: i64 = sqlx::query_scalar("SELECT count(*) FROM deliveries")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(deliveries > 100, "the writers wrote: {deliveries}");

    let drift: i64 = sqlx::query_scalar(
        "WITH kept AS (SELECT source, day, status, n FROM director_status_day WHERE n <> 0), \
              real AS (SELECT 'guests' AS source, (created_at AT TIME ZONE 'UTC')::date AS day, status, count(*) AS n \
                       FROM guests GROUP BY 2, 3 \
                       UNION ALL \
                       SELECT 'deliveries', (created_at AT TIME ZONE 'UTC')::date, status, count(*) \
                       FROM deliveries GROUP BY 2, 3) \
         SELECT count(*) FROM ((SELECT * FROM kept EXCEPT SELECT * FROM real) \
                               UNION ALL (SELECT * FROM real EXCEPT SELECT * FROM kept)) d",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(drift, 0, "kept counts differ from the tables");

    let today = chrono::Utc::now().date_naive();
    let day = |n: u64| today - chrono::Days::new(n);
    for (from, to) in [
        (None, None),
        (Some(day(60)), Some(day(10))),
        (Some(day(5)), None),
    ] {
        let mut q = jobs::domain::reports::ReportFilter::new("MXN");
        q.from = from;
        q.to = to;
        let body = jobs::domain::reports::overview(&app.pool, &q)
            .await
            .unwrap();
        for (metric_name, table) in [
            ("guestsByStatus", "guests"),
            ("deliveriesByStatus", "deliveries"),
        ] {
            let want: Vec<(String, i64)> = sqlx::query_as(&format!(
                "SELECT status, count(*) FROM {table} \
                 WHERE ($1::date IS NULL OR (created_at AT TIME ZONE 'UTC')::date >= $1) \
                   AND ($2::date IS NULL OR (created_at AT TIME ZONE 'UTC')::date <= $2) \
                 GROUP BY status ORDER BY status"
            ))
            .bind(from)
            .bind(to)
            .fetch_all(&app.pool)
            .await
            .unwrap();
            let want: Vec<Value> = want
                .into_iter()
                .map(|(status, count)| json!({ "status": status, "count": count }))
                .collect();
            assert_eq!(
                metric(&body, metric_name)["breakdown"],
                Value::from(want),
                "{metric_name} {from:?}..{to:?}"
            );
        }
    }

    // TRUNCATE empties the counts of that table too.
    sqlx::query("TRUNCATE deliveries")
        .execute(&app.pool)
        .await
        .unwrap();
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM director_status_day WHERE source = 'deliveries'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(left, 0);
}
