//! The operator console used as a person would, in headless Chromium (Debian's `chromium`
//! and `chromium-driver`, which scripts/test.sh installs), driven over WebDriver by
//! fantoccini; everything on 127.0.0.1. Log in, watch a queue's counts change live, filter
//! tasks by a params value, open a dead task, re-drive it and watch it complete, bulk-retry
//! everything matching a filter, pause a queue and see tasks wait, resume it, run a
//! maintenance task by hand; a read-only operator sees no action and is refused one; a
//! request without the session is refused. Screenshots of each page go to
//! `var/screenshots/` (gitignored) for a reviewer.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use axum::{body::Body, http::Request};
use engine::{retry::Backoff, JobError, KindSpec, TaskStatus};
use fantoccini::{Client, ClientBuilder, Locator};
use jobs::queues;
use serde_json::{json, Value};
use testkit::{kinds::test_registry, TestApp, ADMIN};
use tower::ServiceExt;
use uuid::Uuid;

const OPERATOR: &str = "operator-token-console";
/// The whole browser session is bounded: a hung browser fails the test, never blocks CI.
const WHOLE_TEST: Duration = Duration::from_secs(240);
const WAIT: Duration = Duration::from_secs(30);

/// Whether `console.until_fixed` tasks succeed (the test "fixes the upstream" mid-way).
static FIXED: AtomicBool = AtomicBool::new(false);

/// Fails (retryable, 2 attempts, so it ends `dead`) until [`FIXED`], then completes.
fn until_fixed() -> KindSpec<jobs::Services> {
    KindSpec::from_fn(
        "console.until_fixed",
        queues::MAINTENANCE,
        2,
        Duration::from_secs(5),
        Backoff::new(Duration::from_millis(50), Duration::from_millis(100)),
        |_ctx: jobs::Ctx| async move {
            if FIXED.load(Ordering::SeqCst) {
                Ok(engine::Done::Result(json!({ "fixed": true })))
            } else {
                Err(JobError::retryable(
                    "upstream_down",
                    "the upstream answered 503 <b>not bold</b>",
                ))
            }
        },
    )
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(bin))
            .find(|p| p.is_file())
    })
}

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn screenshots_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../var/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    std::fs::write(screenshots_dir().join(format!("console-{name}.png")), png).unwrap();
}

/// Polls `check` until it returns `Some`, or fails saying what was awaited.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The text of `css`, waiting up to 10 s for it to appear: after a click that posts a form,
/// the next page may still be loading.
async fn text(c: &Client, css: &str) -> Option<String> {
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .ok()?
        .text()
        .await
        .ok()
}

/// Waits (up to 10 s) until `css`'s text contains `needle`: after a click that posts a form,
/// the next page may not have loaded yet.
async fn wait_text(c: &Client, css: &str, needle: &str) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if text(c, css).await.is_some_and(|t| t.contains(needle)) {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn count(c: &Client, css: &str) -> usize {
    c.find_all(Locator::Css(css))
        .await
        .map(|v| v.len())
        .unwrap_or(0)
}

async fn click(c: &Client, css: &str) {
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} not on the page: {e}"))
        .click()
        .await
        .unwrap();
}

async fn login(c: &Client, base: &str, token: &str) {
    c.goto(&format!("{base}/console/login")).await.unwrap();
    c.find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(token)
        .await
        .unwrap();
    click(c, "#login").await;
    eventually("the overview after login", || async {
        text(c, "#queues").await.map(|_| ())
    })
    .await;
}

/// A marker that survives only as long as the page is not reloaded.
async fn mark_page(c: &Client) {
    c.execute("window.__consoleMarker = 42;", vec![])
        .await
        .unwrap();
}

async fn page_not_reloaded(c: &Client) -> bool {
    c.execute("return window.__consoleMarker === 42;", vec![])
        .await
        .unwrap()
        == Value::Bool(true)
}

async fn enqueue(app: &TestApp, kind: &str, params: Value) -> Uuid {
    let new = engine::store::NewTask {
        id: Uuid::now_v7(),
        kind: kind.into(),
        queue: queues::MAINTENANCE.into(),
        params,
        max_attempts: 2,
        requester: "demo".into(),
        idempotency_key: None,
        request_id: None,
        run_at: None,
        ttl: Duration::from_secs(3600),
        will_push: false,
    };
    match engine::store::insert(&app.pool, &new).await.unwrap() {
        engine::store::Inserted::Created(r) => r.id,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_console_in_a_browser() {
    let (Some(chromium), Some(driver)) = (which("chromium"), which("chromedriver")) else {
        testkit::skipped(
            "chromium and chromedriver are not installed (scripts/test.sh installs them)",
        );
        return;
    };
    tokio::time::timeout(WHOLE_TEST, run(chromium, driver))
        .await
        .expect("the browser test finishes within its bound");
}

async fn run(chromium: PathBuf, driver: PathBuf) {
    let mut registry = test_registry();
    registry.replace(until_fixed());
    let app = TestApp::builder()
        .tokens(format!(
            "{ADMIN}:ops:admin,{OPERATOR}:watch:operator,demo-token:demo"
        ))
        .registry(registry)
        .api(|c| c.metrics_cache_ttl(Duration::from_millis(300)))
        .workers(&[queues::MAINTENANCE])
        .spawn()
        .await;

    // The api on a real port, for the browser.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = app.router.clone();
    tokio::spawn(async move { axum::serve(listener, router).await });

    let port = free_port();
    let _driver = Driver(
        Command::new(driver)
            .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts"),
    );
    let caps: serde_json::Map<String, Value> = serde_json::from_value(json!({
        "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1500,1100"]
        }
    }))
    .unwrap();
    let c = eventually("chromedriver", || {
        let caps = caps.clone();
        async move {
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps)
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
                .ok()
        }
    })
    .await;

    // Without a session: the pages send to the login, the actions are refused.
    c.goto(&format!("{base}/console/tasks")).await.unwrap();
    assert!(c
        .current_url()
        .await
        .unwrap()
        .path()
        .ends_with("/console/login"));
    shot(&c, "login").await;
    let refused = app
        .router
        .clone()
        .oneshot(
            Request::post("/console/queues/maintenance/pause")
                .header("sec-fetch-site", "same-origin")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    // With an admin's session but from another site: refused too.
    let cookie = api::console::session::SessionConfig::development()
        .issue(ADMIN, chrono::Utc::now().timestamp());
    let cross = app
        .router
        .clone()
        .oneshot(
            Request::post("/console/queues/maintenance/pause")
                .header("cookie", format!("taquilla_console={cookie}"))
                .header("sec-fetch-site", "cross-site")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
    assert!(engine::transport::pause::list(&app.pool)
        .await
        .unwrap()
        .is_empty());

    login(&c, &base, ADMIN).await;
    assert_eq!(text(&c, "#role").await.as_deref(), Some("admin"));

    // Tasks that die: one alone, three of one organizer (and one of another).
    let single = enqueue(&app, "console.until_fixed", json!({ "case": "single" })).await;
    let mut batch = Vec::new();
    for i in 0..3 {
        batch.push(
            enqueue(
                &app,
                "console.until_fixed",
                json!({ "organizerId": "org_console", "n": i }),
            )
            .await,
        );
    }
    let other = enqueue(
        &app,
        "console.until_fixed",
        json!({ "organizerId": "org_other" }),
    )
    .await;
    for id in batch.iter().chain([&single, &other]) {
        app.wait_for(*id, TaskStatus::Dead).await;
    }

    // The overview shows them among the dead letters, live (no reload).
    c.goto(&format!("{base}/console")).await.unwrap();
    mark_page(&c).await;
    eventually("five dead on the maintenance queue", || async {
        (text(&c, "#queue-maintenance .dead").await.as_deref() == Some("5")).then_some(())
    })
    .await;
    let failed_in_chart: i64 = eventually("failures in the hour chart", || async {
        let el = c.find(Locator::Id("hour-maintenance")).await.ok()?;
        let n: i64 = el.attr("data-failed").await.ok()??.parse().ok()?;
        (n >= 10).then_some(n)
    })
    .await;
    assert!(failed_in_chart >= 10, "2 failed attempts × 5 tasks");
    assert!(page_not_reloaded(&c).await);
    shot(&c, "overview").await;

    // Filter by a params value.
    c.goto(&format!("{base}/console/tasks")).await.unwrap();
    c.find(Locator::Id("search"))
        .await
        .unwrap()
        .send_keys("organizerId=org_console")
        .await
        .unwrap();
    click(&c, "#apply").await;
    eventually("three tasks of org_console", || async {
        (count(&c, "tr.task").await == 3).then_some(())
    })
    .await;
    let shown: Vec<String> = {
        let mut ids = Vec::new();
        for row in c.find_all(Locator::Css("tr.task")).await.unwrap() {
            ids.push(row.attr("data-id").await.unwrap().unwrap());
        }
        ids
    };
    let mut expected: Vec<String> = batch.iter().map(Uuid::to_string).collect();
    expected.reverse(); // newest first
    assert_eq!(shown, expected);
    shot(&c, "tasks-filtered").await;

    // Open the dead task, see its escaped error, re-drive it once the upstream is fixed,
    // and watch it complete on the same page.
    c.goto(&format!("{base}/console/tasks/{single}"))
        .await
        .unwrap();
    let status = text(&c, "#status").await.unwrap();
    assert_eq!(status, "dead");
    let errors = text(&c, "#errors").await.unwrap();
    assert!(
        errors.contains("<b>not bold</b>"),
        "escaped, shown as text: {errors}"
    );
    assert_eq!(
        count(&c, "#errors b").await,
        0,
        "no markup from the database"
    );
    shot(&c, "task-dead").await;
    FIXED.store(true, Ordering::SeqCst);
    click(&c, "#retry").await;
    assert!(text(&c, "#notice").await.unwrap().contains("re-driven"));
    mark_page(&c).await;
    eventually("the re-driven task completes, live", || async {
        (text(&c, "#status").await.as_deref() == Some("completed")).then_some(())
    })
    .await;
    assert!(page_not_reloaded(&c).await);
    let timeline = text(&c, "#timeline").await.unwrap();
    assert!(timeline.contains("retry by ops (re-driven)"), "{timeline}");
    shot(&c, "task-completed").await;

    // Bulk retry: everything matching the filter, after a confirmation with the count.
    c.goto(&format!(
        "{base}/console/tasks?search=organizerId%3Dorg_console&status=dead"
    ))
    .await
    .unwrap();
    click(&c, "#bulk-retry").await;
    assert_eq!(text(&c, "#count").await.as_deref(), Some("3"));
    shot(&c, "bulk-confirm").await;
    click(&c, "#confirm").await;
    let notice = text(&c, "#notice").await.unwrap();
    assert!(notice.contains("3 task(s) done"), "{notice}");
    for id in &batch {
        app.wait_for(*id, TaskStatus::Completed).await;
    }
    assert_eq!(
        app.task(other).await.status(),
        TaskStatus::Dead,
        "not matched, not touched"
    );
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM task_actions WHERE actor = 'ops' AND action = 'retry' AND task_id = ANY($1)",
    )
    .bind(&batch)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(audited, 3);

    // Pause the queue: new tasks wait, the overview says so live; resume: they run.
    c.goto(&format!("{base}/console")).await.unwrap();
    click(&c, "#pause-maintenance").await;
    assert!(wait_text(&c, "#queue-maintenance .state", "paused by ops").await);
    mark_page(&c).await;
    tokio::time::sleep(Duration::from_millis(600)).await; // workers see the pause (200 ms poll)
    let waiting = [
        enqueue(&app, "ping", json!({ "trigger": "test" })).await,
        enqueue(&app, "ping", json!({ "trigger": "test" })).await,
    ];
    eventually("two pending on the paused queue, live", || async {
        (text(&c, "#queue-maintenance .pending").await.as_deref() == Some("2")).then_some(())
    })
    .await;
    assert!(page_not_reloaded(&c).await);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    for id in waiting {
        assert_eq!(
            app.task(id).await.status(),
            TaskStatus::Pending,
            "a paused queue starts nothing"
        );
    }
    shot(&c, "overview-paused").await;
    click(&c, "#resume-maintenance").await;
    eventually("the resumed queue's page", || async {
        let state = text(&c, "#queue-maintenance .state").await?;
        (!state.contains("paused")).then_some(())
    })
    .await;
    mark_page(&c).await;
    for id in waiting {
        app.wait_for(id, TaskStatus::Completed).await;
    }
    eventually("the pending count back to 0, live", || async {
        (text(&c, "#queue-maintenance .pending").await.as_deref() == Some("0")).then_some(())
    })
    .await;
    assert!(page_not_reloaded(&c).await);

    // The other pages.
    c.goto(&format!("{base}/console/workers")).await.unwrap();
    let workers = text(&c, "#workers").await.unwrap();
    assert!(workers.contains("maintenance ("), "{workers}");
    shot(&c, "workers").await;
    c.goto(&format!("{base}/console/schedules")).await.unwrap();
    shot(&c, "schedules").await;
    c.goto(&format!("{base}/console/new")).await.unwrap();
    shot(&c, "new-task").await;
    click(&c, "#run-ping").await;
    eventually("the ping created by hand completes", || async {
        (text(&c, "#status").await.as_deref() == Some("completed")).then_some(())
    })
    .await;
    let created: Uuid = text(&c, "#task-id").await.unwrap().parse().unwrap();
    assert_eq!(app.task(created).await.requester, "ops");

    // Log out: the session is gone.
    click(&c, "#logout").await;
    c.goto(&format!("{base}/console")).await.unwrap();
    assert!(c
        .current_url()
        .await
        .unwrap()
        .path()
        .ends_with("/console/login"));

    // A read-only operator sees everything and no action; the server refuses one anyway.
    login(&c, &base, OPERATOR).await;
    assert_eq!(
        text(&c, "#role").await.as_deref(),
        Some("read-only operator")
    );
    assert_eq!(count(&c, "#queues button").await, 0);
    assert_eq!(
        count(&c, "#dead button").await,
        0,
        "re-drive buttons are for admins"
    );
    c.goto(&format!("{base}/console/tasks/{other}"))
        .await
        .unwrap();
    assert_eq!(count(&c, "#actions").await, 0);
    c.goto(&format!("{base}/console/tasks")).await.unwrap();
    assert_eq!(count(&c, "#bulk").await, 0);
    shot(&c, "operator-tasks").await;
    let status = c
        .execute_async(
            "const done = arguments[arguments.length - 1]; \
             fetch('/console/tasks/' + arguments[0] + '/retry', {method: 'POST'}).then(r => done(r.status));",
            vec![json!(other.to_string())],
        )
        .await
        .unwrap();
    assert_eq!(status, json!(403));
    assert_eq!(app.task(other).await.status(), TaskStatus::Dead);

    c.close().await.unwrap();
    app.stop().await;
}
