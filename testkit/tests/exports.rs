//! Report exports: the files read back with independent readers (`csv`, `calamine`) and
//! compared with the synchronous reports; the real S3 client against a real S3 server
//! (multipart, pre-signed links, tampering, expiry); the local store's signed links; cancel
//! mid-export; the per-organizer limit across two workers; the e-mail with the link; and
//! retention.

use std::{collections::HashMap, io::Cursor, time::Duration};

use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use calamine::{Data, Reader};
use engine::TaskStatus;
use jobs::{
    config::S3Config,
    exports::limiter,
    queues as queue,
    storage::{s3::S3Store, Store, EXPORTS_PREFIX},
};
use serde_json::{json, Value};
use testkit::{fixtures::*, *};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(60);

/// The queues this file's workers serve.
const QUEUES: &[&str] = &[queue::REPORTS, queue::MAINTENANCE];

/// An app whose workers run the production kinds.
fn builder() -> TestAppBuilder {
    TestApp::builder().registry(jobs::kinds::registry().unwrap())
}

async fn export(app: &TestApp, body: Value) -> Uuid {
    let (status, resp) = app.export(body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{resp}");
    assert!(resp["links"]["result"].is_string(), "{resp}");
    resp["taskId"].as_str().unwrap().parse().unwrap()
}

async fn finished_result(app: &TestApp, id: Uuid) -> Value {
    let rec = app.wait_finished(id, WAIT).await;
    assert_eq!(rec.status(), TaskStatus::Completed, "{:?}", rec.error);
    let (status, result) = app
        .call(
            "GET",
            &format!("/director/reports/tasks/{id}/result"),
            Some(DEMO),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    for field in [
        "url",
        "filename",
        "format",
        "rows",
        "sizeBytes",
        "expiresAt",
    ] {
        assert!(!result[field].is_null(), "result lacks {field}: {result}");
    }
    result
}

/// Downloads a link: local links through the api router (they point at it), S3 links over
/// plain HTTP.
async fn download(app: &TestApp, url: &str) -> (StatusCode, Vec<u8>) {
    if let Some(path) = url.strip_prefix("http://127.0.0.1:8080") {
        let req = Request::builder().uri(path).body(Body::empty()).unwrap();
        let resp = app.request(req).await;
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 30)
            .await
            .unwrap();
        (status, bytes.to_vec())
    } else {
        let resp = reqwest::get(url).await.unwrap();
        let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
        (status, resp.bytes().await.unwrap().to_vec())
    }
}

fn csv_rows(bytes: &[u8]) -> Vec<HashMap<String, String>> {
    let mut r = csv::Reader::from_reader(bytes);
    let headers = r.headers().unwrap().clone();
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            headers
                .iter()
                .zip(rec.iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// The first sheet as header → cell maps.
fn xlsx_rows(bytes: &[u8]) -> Vec<HashMap<String, Data>> {
    let mut wb = calamine::Xlsx::new(Cursor::new(bytes.to_vec())).unwrap();
    let sheet = wb.sheet_names()[0].clone();
    let range = wb.worksheet_range(&sheet).unwrap();
    let mut rows = range.rows();
    let headers: Vec<String> = rows.next().unwrap().iter().map(|c| c.to_string()).collect();
    rows.map(|row| headers.iter().cloned().zip(row.iter().cloned()).collect())
        .collect()
}

fn num(d: &Data) -> f64 {
    match d {
        Data::Float(f) => *f,
        Data::Int(i) => *i as f64,
        Data::DateTime(t) => t.as_f64(),
        other => panic!("not a number: {other:?}"),
    }
}

async fn get_json(app: &TestApp, path: &str) -> Value {
    let (status, body) = app.call("GET", path, Some(DEMO), None).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body
}

fn excel_serial(rfc3339: &str) -> f64 {
    let t = chrono::DateTime::parse_from_rfc3339(rfc3339).unwrap();
    25_569.0 + t.timestamp_micros() as f64 / 86_400_000_000.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ledger_exports_match_the_ledger_endpoint_in_csv_and_xlsx() {
    let app = builder().spawn().await;
    director_fixture(&app).await;
    app.add_worker(QUEUES);
    let ledger = get_json(&app, "/director/organizers/org_demo/ledger?pageSize=500").await;
    let entries = ledger["data"].as_array().unwrap().clone();
    assert_eq!(entries.len(), 5);

    let csv_task = export(
        &app,
        json!({"report": "ledger", "format": "csv", "organizerId": "org_demo"}),
    )
    .await;
    let xlsx_task = export(
        &app,
        json!({"report": "ledger", "format": "xlsx", "filters": {"organizerId": "org_demo"}}),
    )
    .await;

    let result = finished_result(&app, csv_task).await;
    assert_eq!(result["format"], "csv");
    assert_eq!(result["rows"], 5);
    assert!(result["filename"].as_str().unwrap().ends_with(".csv"));
    let (status, bytes) = download(&app, result["url"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(result["sizeBytes"], bytes.len());
    let rows = csv_rows(&bytes);
    assert_eq!(rows.len(), entries.len());
    for (row, entry) in rows.iter().zip(&entries) {
        assert_eq!(row["id"], entry["id"].as_str().unwrap());
        assert_eq!(row["createdAt"], entry["createdAt"].as_str().unwrap());
        assert_eq!(row["entryType"], entry["entryType"].as_str().unwrap());
        assert_eq!(row["eventId"], entry["eventId"].as_str().unwrap_or(""));
        assert_eq!(row["tickets"], entry["tickets"].to_string());
        assert_eq!(
            row["ticketsEquivalent"],
            entry["ticketsEquivalent"].to_string()
        );
        assert_eq!(row["amountCents"], entry["amountCents"].to_string());
        let cents = entry["amountCents"].as_i64().unwrap();
        assert_eq!(row["amount"], format!("{}.{:02}", cents / 100, cents % 100));
        assert_eq!(row["currency"], entry["currency"].as_str().unwrap());
    }

    let result = finished_result(&app, xlsx_task).await;
    assert_eq!(result["format"], "xlsx");
    let (status, bytes) = download(&app, result["url"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let rows = xlsx_rows(&bytes);
    assert_eq!(rows.len(), entries.len());
    for (row, entry) in rows.iter().zip(&entries) {
        assert_eq!(
            row["id"],
            Data::String(entry["id"].as_str().unwrap().into())
        );
        // Numbers are numbers, money in major units, timestamps real Excel dates.
        assert_eq!(num(&row["tickets"]), entry["tickets"].as_f64().unwrap());
        assert_eq!(
            num(&row["amountCents"]),
            entry["amountCents"].as_f64().unwrap()
        );
        assert!(
            (num(&row["amount"]) - entry["amountCents"].as_f64().unwrap() / 100.0).abs() < 1e-9
        );
        assert!(
            matches!(row["createdAt"], Data::DateTime(_)),
            "{:?}",
            row["createdAt"]
        );
        let want = excel_serial(entry["createdAt"].as_str().unwrap());
        assert!((num(&row["createdAt"]) - want).abs() < 1e-6);
    }

    // The link is the authorization: altered → 403, expired → 410; the result of a foreign
    // requester's task → 404.
    let url = result["url"].as_str().unwrap();
    let tampered = url.replace("signature=", "signature=00");
    assert_eq!(download(&app, &tampered).await.0, StatusCode::FORBIDDEN);
    let other_key = url.replace(".xlsx?", ".csv?");
    assert_eq!(download(&app, &other_key).await.0, StatusCode::FORBIDDEN);
    let Store::Local(local) = Store::from_config(&app.config.exports).unwrap() else {
        panic!("local store expected");
    };
    let key = result["storage"]["key"].as_str().unwrap();
    let expired = local.signed_url(key, chrono::Utc::now() - chrono::Duration::seconds(1));
    assert_eq!(download(&app, &expired).await.0, StatusCode::GONE);
    let (status, _) = app
        .call(
            "GET",
            &format!("/director/reports/tasks/{xlsx_task}/result"),
            Some(OTHER),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn report_exports_match_the_synchronous_reports() {
    let app = builder().spawn().await;
    director_fixture(&app).await;
    app.add_worker(QUEUES);
    let filters = "from=2025-10-01&to=2025-12-31";
    for (report, key_field, format) in [
        ("top-organizers", "organizerId", "csv"),
        ("tickets-usage", "eventId", "xlsx"),
        ("debt-aging", "bucket", "csv"),
    ] {
        let sync = get_json(
            &app,
            &format!("/director/reports/{report}?{filters}&pageSize=500"),
        )
        .await;
        let data = sync["data"].as_array().unwrap().clone();
        assert!(!data.is_empty(), "{report}: fixture gives rows");
        let id = export(
            &app,
            json!({"report": report, "format": format, "from": "2025-10-01", "to": "2025-12-31"}),
        )
        .await;
        let result = finished_result(&app, id).await;
        let (status, bytes) = download(&app, result["url"].as_str().unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        let cents_field = if report == "debt-aging" {
            "amountCents"
        } else {
            "assignedValueCents"
        };
        if format == "csv" {
            let rows = csv_rows(&bytes);
            assert_eq!(rows.len(), data.len(), "{report}");
            for (row, d) in rows.iter().zip(&data) {
                assert_eq!(row[key_field], d[key_field].as_str().unwrap(), "{report}");
                assert_eq!(row[cents_field], d[cents_field].to_string(), "{report}");
            }
        } else {
            let rows = xlsx_rows(&bytes);
            assert_eq!(rows.len(), data.len(), "{report}");
            for (row, d) in rows.iter().zip(&data) {
                assert_eq!(
                    row[key_field],
                    Data::String(d[key_field].as_str().unwrap().into())
                );
                assert_eq!(num(&row[cents_field]), d[cents_field].as_f64().unwrap());
                assert_eq!(
                    num(&row["ticketsAssigned"]),
                    d["ticketsAssigned"].as_f64().unwrap()
                );
            }
        }
    }
    // The overview: one row per metric, one per status of the breakdowns.
    let sync = get_json(&app, "/director/reports/overview").await;
    let id = export(&app, json!({"report": "overview", "format": "csv"})).await;
    let result = finished_result(&app, id).await;
    let rows = csv_rows(&download(&app, result["url"].as_str().unwrap()).await.1);
    let value = |metric: &str| {
        rows.iter()
            .find(|r| r["metric"] == metric)
            .unwrap_or_else(|| panic!("{metric} missing"))["value"]
            .clone()
    };
    for m in [
        "ticketsEquivalentDelivered",
        "assignedValueCents",
        "openDebtCents",
    ] {
        let want = sync["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["metric"] == m)
            .unwrap()["value"]
            .to_string();
        assert_eq!(value(m), want, "{m}");
    }
    assert!(rows.iter().any(|r| r["metric"] == "guestsByStatus"
        && r["status"] == "confirmed"
        && r["value"] == "2"));
    app.stop().await;
}

/// Issue 10: a window ending 9999-12-31 once built `'+10000-01-01'::date` into the SQL, so
/// the export failed every attempt and went `dead`. The bounds are bound now: it completes
/// with the same rows as the synchronous report.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exports_with_far_dates_complete() {
    let app = builder().spawn().await;
    director_fixture(&app).await;
    app.add_worker(QUEUES);
    for (report, filters, query) in [
        (
            "top-organizers",
            json!({"to": "9999-12-31"}),
            "to=9999-12-31",
        ),
        (
            "overview",
            json!({"to": "9999-12-31", "organizerId": "org_demo"}),
            "to=9999-12-31&organizerId=org_demo",
        ),
        (
            "tickets-usage",
            json!({"from": "0000-01-01", "to": "9999-12-31"}),
            "from=0000-01-01&to=9999-12-31",
        ),
    ] {
        let mut body = json!({"report": report, "format": "csv"});
        body.as_object_mut()
            .unwrap()
            .extend(filters.as_object().unwrap().clone());
        let id = export(&app, body).await;
        let result = finished_result(&app, id).await;
        let sync = get_json(
            &app,
            &format!("/director/reports/{report}?{query}&pageSize=500"),
        )
        .await;
        let rows = csv_rows(&download(&app, result["url"].as_str().unwrap()).await.1);
        if report != "overview" {
            let data = sync["data"].as_array().unwrap();
            assert!(!data.is_empty(), "{report}: the fixture gives rows");
            assert_eq!(rows.len(), data.len(), "{report}");
        } else {
            let want = sync["data"][0]["value"].to_string();
            assert_eq!(sync["data"][0]["metric"], "ticketsEquivalentDelivered");
            assert_ne!(want, "0", "the fixture gives org_demo tickets");
            let row = rows
                .iter()
                .find(|r| r["metric"] == "ticketsEquivalentDelivered")
                .unwrap();
            assert_eq!(row["value"], want);
        }
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_export_requests_name_the_field() {
    let app = TestApp::spawn().await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({"format": "csv"}), "report"),
        (json!({"report": "sales", "format": "csv"}), "report"),
        (json!({"report": "ledger"}), "format"),
        (json!({"report": "ledger", "format": "pdf"}), "format"),
        (
            json!({"report": "ledger", "format": "csv", "from": "2025-13-01"}),
            "from",
        ),
        (
            json!({"report": "ledger", "format": "csv", "from": "2025-12-01", "to": "2025-11-01"}),
            "from",
        ),
        (
            json!({"report": "ledger", "format": "csv", "sort": "name"}),
            "sort",
        ),
        (
            json!({"report": "ledger", "format": "csv", "pageSize": 0}),
            "pageSize",
        ),
        (
            json!({"report": "ledger", "format": "csv", "eventType": "vip"}),
            "eventType",
        ),
        (
            json!({"report": "ledger", "format": "csv", "organizerId": 7}),
            "organizerId",
        ),
        (
            json!({"report": "ledger", "format": "csv", "currency": "pesos"}),
            "currency",
        ),
        (
            json!({"report": "ledger", "format": "csv", "notifyEmails": ["nope"]}),
            "notifyEmails",
        ),
        (
            json!({"report": "ledger", "format": "csv", "notifyEmails": "a@b.com"}),
            "notifyEmails",
        ),
        (
            json!({"report": "ledger", "format": "csv", "filters": {"color": "red"}}),
            "filters.color",
        ),
        (
            json!({"report": "ledger", "format": "csv", "filters": 3}),
            "filters",
        ),
        (
            json!({"report": "ledger", "format": "csv", "from": "2025-01-01", "filters": {"from": "2025-01-01"}}),
            "filters.from",
        ),
        (
            json!({"report": "ledger", "format": "csv", "color": "red"}),
            "color",
        ),
    ];
    for (body, field) in cases {
        let (status, resp) = app
            .call(
                "POST",
                "/director/reports/exports",
                Some(DEMO),
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} → {resp}");
        assert!(
            resp["error"]["fields"][field].is_string(),
            "{body}: expected field {field} in {resp}"
        );
    }
    let (status, _) = app
        .call(
            "POST",
            "/director/reports/exports",
            None,
            Some(json!({"report": "ledger", "format": "csv"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(n, 0, "no bad request reached a queue");
}

// ------------------------------------------------------------------------- S3 ----

/// The S3 server of scripts/test.sh, with a bucket of this test's own (retention lists the
/// whole bucket, so tests must not share one).
async fn s3_app(more: impl FnOnce(&mut jobs::Config) + 'static) -> Option<TestApp> {
    let Ok(endpoint) = std::env::var("TEST_S3_ENDPOINT") else {
        skipped("TEST_S3_ENDPOINT is not set (run scripts/test.sh, which starts an S3 server)");
        return None;
    };
    let bucket = format!("t-{}", Uuid::now_v7().simple());
    let cfg = S3Config {
        bucket: bucket[..bucket.len().min(63)].to_string(),
        endpoint: Some(endpoint),
        region: "us-east-1".into(),
        access_key_id: std::env::var("TEST_S3_ACCESS_KEY").unwrap_or_else(|_| "testkey".into()),
        secret_access_key: std::env::var("TEST_S3_SECRET_KEY")
            .unwrap_or_else(|_| "testsecret".into()),
        force_path_style: true,
    };
    S3Store::new(&cfg, 5 << 20).ensure_bucket().await.unwrap();
    let app = builder()
        .core(move |c| {
            c.exports.s3 = Some(cfg);
            c.exports.part_bytes = 5 << 20;
            more(c);
        })
        .spawn()
        .await;
    Some(app)
}

/// `n` extra ledger entries of org_demo (about 110 bytes of CSV each), loaded the way the
/// benchmark loads its data: roll-up trigger off, one rebuild after.
async fn bulk_ledger(app: &TestApp, n: i64) {
    let mut tx = app.pool.begin().await.unwrap();
    sqlx::query("ALTER TABLE director_ledger_entries DISABLE TRIGGER director_ledger_rollup")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO director_ledger_entries (id, organizer_id, event_id, entry_type, tickets, \
             tickets_equivalent, amount_cents, currency, task_id, created_at) \
         SELECT gen_random_uuid(), 'org_demo', 'ev_demo', 'assign_prepaid', 1 + i % 50, 1 + i % 50, \
                1000 + i, 'MXN', gen_random_uuid(), timestamptz '2025-01-01' + i * interval '1 second' \
         FROM generate_series(1, $1) AS i",
    )
    .bind(n)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query("ALTER TABLE director_ledger_entries ENABLE TRIGGER director_ledger_rollup")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("SELECT director_rollups_rebuild()")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

fn s3_store(app: &TestApp) -> S3Store {
    S3Store::new(app.config.exports.s3.as_ref().unwrap(), 5 << 20)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_export_uses_multipart_and_a_presigned_link_that_refuses_tampering_and_expiry() {
    // Results (and links) expire 10 s after completion.
    let Some(app) = s3_app(|c| c.task_ttl = Duration::from_secs(10)).await else {
        return;
    };
    app.seed_demo().await;
    bulk_ledger(&app, 60_000).await; // ~7 MB of CSV: two 5 MiB parts
    app.add_worker(QUEUES);
    let id = export(
        &app,
        json!({"report": "ledger", "format": "csv", "organizerId": "org_demo"}),
    )
    .await;
    let result = finished_result(&app, id).await;
    assert_eq!(result["storage"]["backend"], "s3");
    assert_eq!(result["rows"], 60_000);
    let size = result["sizeBytes"].as_u64().unwrap();
    assert!(
        size > 5 << 20,
        "large enough for a multipart upload: {size}"
    );
    let url = result["url"].as_str().unwrap();
    assert!(url.contains("X-Amz-Signature="), "{url}");
    let (status, bytes) = download(&app, url).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes.len() as u64, size);
    let rows = csv_rows(&bytes);
    assert_eq!(rows.len(), 60_000);
    assert_eq!(rows[0]["createdAt"], "2025-01-01T16:40:00Z", "newest first");

    let tampered = url.replace("X-Amz-Signature=", "X-Amz-Signature=0");
    assert_eq!(download(&app, &tampered).await.0, StatusCode::FORBIDDEN);
    let other_object = url.replace(".csv?", ".xlsx?");
    assert_eq!(download(&app, &other_object).await.0, StatusCode::FORBIDDEN);

    // Past the task's expiry: the link is refused by S3 and the result route says 410.
    let rec = app.task(id).await;
    let wait = (rec.expires_at.unwrap() - chrono::Utc::now())
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_secs(2)).await;
    assert_eq!(download(&app, url).await.0, StatusCode::FORBIDDEN);
    let (status, body) = app
        .call(
            "GET",
            &format!("/director/reports/tasks/{id}/result"),
            Some(DEMO),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::GONE, "{body}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_mid_export_stops_it_and_leaves_nothing_behind() {
    let Some(app) = s3_app(|_| {}).await else {
        return;
    };
    app.seed_demo().await;
    bulk_ledger(&app, 150_000).await;
    app.add_worker(QUEUES);
    let id = export(
        &app,
        json!({"report": "ledger", "format": "xlsx", "organizerId": "org_demo"}),
    )
    .await;
    // Wait until rows are streaming, then cancel.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, t) = app.get_task(id, DEMO).await;
        if t["stage"] == "export" && t["progress"].as_i64().unwrap_or(0) > 5 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "export never reached its rows: {t}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, body) = app
        .call(
            "POST",
            &format!("/director/reports/tasks/{id}/cancel"),
            Some(DEMO),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let started = std::time::Instant::now();
    let rec = app.wait_finished(id, WAIT).await;
    assert_eq!(rec.status(), TaskStatus::Cancelled, "{:?}", rec.error);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stopped within a chunk"
    );
    // No object, no multipart upload, no scratch files.
    let store = s3_store(&app);
    let listed = store
        .list_older_than(chrono::Utc::now() + chrono::Duration::hours(1))
        .await
        .unwrap();
    assert!(listed.is_empty(), "objects left: {listed:?}");
    assert_eq!(
        store
            .abort_stale_uploads(chrono::Utc::now() + chrono::Duration::hours(1))
            .await
            .unwrap(),
        0,
        "no multipart upload left open"
    );
    let scratch: Vec<_> = std::fs::read_dir(&app.config.exports.scratch_dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(scratch.is_empty(), "scratch files left: {scratch:?}");
    app.stop().await;
}

// ------------------------------------------------------------- limit, e-mail ----

/// Granted advisory locks of one organizer's export slots: the exports running for it.
async fn slot_holders(app: &TestApp, organizer: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
           AND classid = (hashtext(current_schema() || ':report_export:' || $1)::bigint & 4294967295)::oid",
    )
    .bind(limiter::bucket(Some(organizer)))
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_export_per_organizer_runs_at_a_time_across_two_workers() {
    let app = builder().seed_demo().spawn().await;
    bulk_ledger(&app, 20_000).await;
    sqlx::query("INSERT INTO director_ledger_entries (id, organizer_id, entry_type, tickets, tickets_equivalent, amount_cents, currency, task_id) VALUES (gen_random_uuid(), 'org_acme', 'payment', 0, 0, 100, 'MXN', gen_random_uuid())")
        .execute(&app.pool)
        .await
        .unwrap();

    // Another replica holds org_demo's only slot: its exports wait (no attempt used, the
    // reason in `stage`) while org_acme's runs.
    let held = limiter::try_acquire(&app.pool, &limiter::bucket(Some("org_demo")), 1)
        .await
        .unwrap()
        .expect("slot free");
    let w1 = app.start_worker(QUEUES);
    let w2 = app.start_worker(QUEUES);
    let demo: Vec<Uuid> = futures::future::join_all((0..3).map(|_| {
        export(
            &app,
            json!({"report": "ledger", "format": "csv", "organizerId": "org_demo"}),
        )
    }))
    .await;
    let acme = export(
        &app,
        json!({"report": "ledger", "format": "csv", "organizerId": "org_acme"}),
    )
    .await;
    let rec = app.wait_finished(acme, WAIT).await;
    assert_eq!(rec.status(), TaskStatus::Completed, "{:?}", rec.error);
    tokio::time::sleep(Duration::from_millis(500)).await;
    for id in &demo {
        let (_, t) = app.get_task(*id, DEMO).await;
        assert_eq!(t["status"], "pending", "{t}");
        assert!(
            t["stage"]
                .as_str()
                .unwrap_or("")
                .starts_with("waiting_for_slot"),
            "{t}"
        );
        assert_eq!(app.task(*id).await.attempts, 0, "waiting uses no attempt");
    }
    held.release().await;

    // Once free, they run one at a time: never two holders of the slot.
    let mut max_holders = 0;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        max_holders = max_holders.max(slot_holders(&app, "org_demo").await);
        let mut done = 0;
        for id in &demo {
            if app.task(*id).await.status().is_terminal() {
                done += 1;
            }
        }
        if done == demo.len() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "exports did not finish"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        max_holders, 1,
        "one export of org_demo at a time (and the probe saw it)"
    );
    for id in &demo {
        let rec = app.task(*id).await;
        assert_eq!(rec.status(), TaskStatus::Completed, "{:?}", rec.error);
        assert_eq!(rec.attempts, 1, "waiting for the slot did not use attempts");
        assert_eq!(rec.result.unwrap()["rows"], 20_000);
    }
    w1.stop().await;
    w2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn notify_emails_receive_the_link_through_a_real_smtp_server() {
    let Some(sink) = SmtpSink::start().await else {
        return skipped("aiosmtpd is not installed (set SMTP_SINK_PYTHON or run scripts/test.sh)");
    };
    let smtp_url = format!("smtp://127.0.0.1:{}", sink.port);
    let app = builder()
        .core(move |c| c.deliveries.smtp_url = Some(smtp_url))
        .spawn()
        .await;
    director_fixture(&app).await;
    app.add_worker(QUEUES);
    let id = export(
        &app,
        json!({"report": "debt-aging", "format": "xlsx", "notifyEmails": ["ana@example.com"]}),
    )
    .await;
    let result = finished_result(&app, id).await;
    assert_eq!(result["notified"]["sent"], json!(["ana@example.com"]));
    let raw = sink.wait_message().await;
    let msg = mail_parser::MessageParser::default().parse(&raw).unwrap();
    assert_eq!(msg.subject(), Some("Reporte listo: debt-aging"));
    let text = msg.body_text(0).unwrap();
    assert!(text.contains(result["url"].as_str().unwrap()), "{text}");
    assert_eq!(
        download(&app, result["url"].as_str().unwrap()).await.0,
        StatusCode::OK
    );

    // A mail that cannot be sent does not fail the export: it is reported.
    drop(sink);
    let id = export(
        &app,
        json!({"report": "debt-aging", "format": "csv", "notifyEmails": ["ana@example.com"]}),
    )
    .await;
    let result = finished_result(&app, id).await;
    assert_eq!(result["notified"]["sent"], json!([]));
    assert_eq!(result["notified"]["failed"][0]["email"], "ana@example.com");
    app.stop().await;
}

// ----------------------------------------------------------------- retention ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn task_cleanup_deletes_expired_tasks_their_files_and_orphans() {
    let app = builder().spawn().await;
    director_fixture(&app).await;
    app.add_worker(QUEUES);
    let old = export(&app, json!({"report": "debt-aging", "format": "csv"})).await;
    let keep = export(&app, json!({"report": "debt-aging", "format": "csv"})).await;
    let old_result = finished_result(&app, old).await;
    let keep_result = finished_result(&app, keep).await;
    let Store::Local(local) = Store::from_config(&app.config.exports).unwrap() else {
        panic!("local store expected");
    };
    let old_file = local
        .path_of(old_result["storage"]["key"].as_str().unwrap())
        .unwrap();
    let keep_file = local
        .path_of(keep_result["storage"]["key"].as_str().unwrap())
        .unwrap();
    assert!(old_file.is_file() && keep_file.is_file());
    sqlx::query("UPDATE tasks SET expires_at = now() - interval '1 second' WHERE id = $1")
        .bind(old)
        .execute(&app.pool)
        .await
        .unwrap();
    // A file whose task is gone (a crash after the upload), older than the retention.
    let orphan = local
        .path_of(&format!("{EXPORTS_PREFIX}{}/lost.csv", Uuid::now_v7()))
        .unwrap();
    std::fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    std::fs::write(&orphan, "x").unwrap();
    let two_days_ago = std::time::SystemTime::now() - Duration::from_secs(2 * 86_400);
    std::fs::File::options()
        .write(true)
        .open(&orphan)
        .unwrap()
        .set_modified(two_days_ago)
        .unwrap();
    let mut redis = app.redis.clone();
    let progress_key = app.keys.task_progress(old);
    let _: () = redis::cmd("HSET")
        .arg(&progress_key)
        .arg("progress")
        .arg(100)
        .query_async(&mut redis)
        .await
        .unwrap();

    let cleanup = enqueue(
        &app,
        &engine::KindSpec::of::<jobs::kinds::task_cleanup::TaskCleanup>(),
        json!({"trigger": "test"}),
    )
    .await;
    let rec = app.wait_finished(cleanup, WAIT).await;
    assert_eq!(rec.status(), TaskStatus::Completed, "{:?}", rec.error);
    let r = rec.result.unwrap();
    assert!(r["tasksDeleted"].as_u64().unwrap() >= 1, "{r}");
    assert_eq!(r["filesDeleted"], 1, "{r}");
    assert_eq!(r["orphanFilesDeleted"], 1, "{r}");
    assert!(!old_file.exists() && !orphan.exists());
    assert!(keep_file.is_file(), "a live export keeps its file");
    let (status, _) = app.get_task(old, DEMO).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let exists: bool = redis::cmd("EXISTS")
        .arg(&progress_key)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(!exists, "the progress hash went with the task");
    assert_eq!(app.task(keep).await.status(), TaskStatus::Completed);
    app.stop().await;
}

// ------------------------------------------------------------------ operators ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_and_workers_show_what_ran() {
    let app = builder().spawn().await;
    director_fixture(&app).await;
    app.add_worker(QUEUES);
    let id = export(&app, json!({"report": "debt-aging", "format": "csv"})).await;
    finished_result(&app, id).await;
    // Workers flush their metrics every second.
    let want = "director_jobs_reports_duration_seconds_count{report=\"debt-aging\",format=\"csv\",status=\"completed\"} 1";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let text = loop {
        let req = Request::get("/metrics").body(Body::empty()).unwrap();
        let resp = app.request(req).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 22)
            .await
            .unwrap();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        if text.contains(want) || tokio::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(text.contains(want), "{text}");
    assert!(
        text.contains(
            "taquilla_task_duration_seconds_count{kind=\"report_export\",status=\"completed\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("taquilla_queue_tasks{queue=\"reports\",state=\"pending\"} 0"),
        "{text}"
    );

    let (status, body) = app
        .call("GET", "/admin/workers", Some("admin-token"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let workers = body["data"].as_array().unwrap();
    assert_eq!(workers.len(), 1, "{body}");
    assert_eq!(workers[0]["alive"], true, "{body}");
    let queues: Vec<&str> = workers[0]["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["queue"].as_str().unwrap())
        .collect();
    assert!(
        queues.contains(&"reports") && queues.contains(&"maintenance"),
        "{body}"
    );
    let (status, _) = app.call("GET", "/admin/workers", Some(DEMO), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    app.stop().await;
}
