//! Production defaults (issue 10 §2): the api fails closed. No demo tokens, signed webhooks
//! only, a protected and cheap `/metrics`, read-only operators, scoped tokens, the JSON 413
//! on every route, and one task per provider event.

use std::{process::Command, time::Duration};

use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use jobs::config::Environment;
use serde_json::{json, Value};
use testkit::{TestApp, TestAppBuilder};

// Production tokens: 32+ characters.
const ADMIN: &str = "admin-0123456789abcdef0123456789ab";
const OPERATOR: &str = "operator-0123456789abcdef012345678";
const CLIENT: &str = "client-0123456789abcdef0123456789a";
const REPORTS_ONLY: &str = "reports-0123456789abcdef012345678a";
const DELIVERIES_ONLY: &str = "deliveries-0123456789abcdef0123456";
const METRICS: &str = "metrics-0123456789abcdef0123456789";
const APP_SECRET: &str = "meta-app-secret";
const SHARED_SECRET: &str = "shared-webhook-secret";

/// The api in production mode with this file's tokens and a metrics token, after
/// `customize` (secrets, cache windows).
async fn production_app(customize: impl FnOnce(TestAppBuilder) -> TestAppBuilder) -> TestApp {
    let spec = format!(
        "{ADMIN}:ops:admin,{OPERATOR}:watch:operator,{CLIENT}:acme,\
         {REPORTS_ONLY}:analyst:scopes=reports,{DELIVERIES_ONLY}:sender:scopes=deliveries"
    );
    let builder = TestApp::builder()
        .core(|c| c.environment = Environment::Production)
        .tokens(spec)
        .api(|a| a.metrics_token(Some(METRICS.into())));
    customize(builder).spawn().await
}

struct Reply {
    status: StatusCode,
    content_type: String,
    body: Value,
    text: String,
}

async fn send(app: &TestApp, req: Request<Body>) -> Reply {
    let resp = app.request(req).await;
    let status = resp.status();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
        .await
        .unwrap();
    Reply {
        status,
        content_type,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    };
    send(app, req.unwrap()).await
}

async fn webhook(app: &TestApp, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut req = Request::post("/wa/webhook").header("content-type", "application/json");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    send(app, req.body(Body::from(body.to_string())).unwrap()).await
}

/// `sha256=<hex>` of `body` under `key`, computed by openssl (not by the code under test).
fn openssl_signature(key: &str, body: &str) -> String {
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", key, "-r"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl is installed");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let hex = String::from_utf8(out.stdout).unwrap();
    format!("sha256={}", hex.split_whitespace().next().unwrap())
}

fn assert_error(reply: &Reply, status: StatusCode, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.text);
    assert!(
        reply.content_type.starts_with("application/json"),
        "{status} must be JSON, got {:?}: {}",
        reply.content_type,
        reply.text
    );
    assert_eq!(reply.body["error"]["code"], code, "{}", reply.text);
    assert!(reply.body["requestId"].is_string(), "{}", reply.text);
}

/// Runs the real api binary with a clean environment and returns (exit code, stderr).
fn start_api(vars: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(testkit::binary("api"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        // Were the config accepted, the api would stop at the unreachable database instead
        // of serving: a start that should have been refused then shows as the wrong code.
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")
        .env("PORT", "0")
        .env("LOG_FORMAT", "text")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start the api binary");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            let text = String::from_utf8_lossy(&out.stderr).into_owned()
                + &String::from_utf8_lossy(&out.stdout);
            return (status.code(), text);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            let text = String::from_utf8_lossy(&out.stderr).into_owned();
            return (None, format!("still running after 20 s: {text}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn production_refuses_to_start_without_real_tokens() {
    // TAQUILLA_ENV unset means production.
    let (code, out) = start_api(&[]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("API_TOKENS") && out.contains("required"),
        "{out}"
    );

    let listed_demo = format!("{CLIENT}:acme,demo-token:demo");
    let (code, out) = start_api(&[("API_TOKENS", &listed_demo)]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("built-in development token"), "{out}");
    assert!(
        !out.contains(CLIENT),
        "a token must never be printed: {out}"
    );

    let (code, out) = start_api(&[("API_TOKENS", "short-token-123:acme")]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("at least 32 characters"), "{out}");

    let reserved = format!("{CLIENT}:cron");
    let (code, out) = start_api(&[("API_TOKENS", &reserved)]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("reserved"), "{out}");

    let valid = format!("{CLIENT}:acme");
    let (code, out) = start_api(&[("TAQUILLA_ENV", "staging"), ("API_TOKENS", &valid)]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("TAQUILLA_ENV"), "{out}");

    // The console's sessions need a real signing key in production.
    let (code, out) = start_api(&[("API_TOKENS", &valid)]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("CONSOLE_SESSION_SECRET"), "{out}");
    let (code, out) = start_api(&[
        ("API_TOKENS", &valid),
        ("CONSOLE_SESSION_SECRET", "too-short"),
    ]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("at least 32 characters"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_refuses_unsigned_webhooks() {
    let app = production_app(|b| b).await;
    let reply = webhook(&app, &[], "{}").await;
    assert_error(&reply, StatusCode::UNAUTHORIZED, "unauthorized");
    let reply = webhook(&app, &[("x-webhook-secret", "anything")], "{}").await;
    assert_error(&reply, StatusCode::UNAUTHORIZED, "unauthorized");
    let tasks: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(tasks, 0, "a refused call must not create a task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_accept_meta_signatures_and_the_shared_secret() {
    let app = production_app(|b| {
        b.core(|c| {
            c.deliveries.wa_app_secret = Some(APP_SECRET.into());
            c.deliveries.wa_webhook_secret = Some(SHARED_SECRET.into());
        })
    })
    .await;
    let body = r#"{"statuses":[{"id":"wamid.sig","status":"read","timestamp":"1700000000"}]}"#;
    let signature = openssl_signature(APP_SECRET, body);

    let reply = webhook(&app, &[("x-hub-signature-256", &signature)], body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(reply.body["taskId"].is_string(), "{}", reply.text);

    // The signature covers the raw bytes: the same JSON spaced differently is not signed.
    let respaced = body.replace(':', ": ");
    let reply = webhook(&app, &[("x-hub-signature-256", &signature)], &respaced).await;
    assert_error(&reply, StatusCode::UNAUTHORIZED, "unauthorized");
    let wrong_key = openssl_signature("another-secret", body);
    let reply = webhook(&app, &[("x-hub-signature-256", &wrong_key)], body).await;
    assert_error(&reply, StatusCode::UNAUTHORIZED, "unauthorized");
    for malformed in ["", "sha256=", "sha256=zz", "md5=00", &signature[7..]] {
        let reply = webhook(&app, &[("x-hub-signature-256", malformed)], body).await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, "unauthorized");
    }

    let other = r#"{"statuses":[{"id":"wamid.shared","status":"read"}]}"#;
    let reply = webhook(&app, &[("x-webhook-secret", SHARED_SECRET)], other).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let reply = webhook(
        &app,
        &[("x-webhook-secret", "shared-webhook-secreT")],
        other,
    )
    .await;
    assert_error(&reply, StatusCode::UNAUTHORIZED, "unauthorized");

    // Only the Meta signature configured: the shared header alone is not enough.
    let app =
        production_app(|b| b.core(|c| c.deliveries.wa_app_secret = Some(APP_SECRET.into()))).await;
    let reply = webhook(&app, &[("x-webhook-secret", SHARED_SECRET)], other).await;
    assert_error(&reply, StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_a_metrics_or_operator_token_in_production() {
    let app = production_app(|b| b).await;
    assert_error(
        &call(&app, "GET", "/metrics", None, None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        &call(&app, "GET", "/metrics", Some("not-a-token"), None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        &call(&app, "GET", "/metrics", Some(CLIENT), None).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    for token in [METRICS, OPERATOR, ADMIN] {
        let reply = call(&app, "GET", "/metrics", Some(token), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert!(
            reply.text.contains("taquilla_queue_tasks"),
            "{}",
            reply.text
        );
    }
    // The metrics token opens /metrics only.
    assert_error(
        &call(&app, "GET", "/admin/queues", Some(METRICS), None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
}

/// The pending count of the `assignments` queue in a scrape.
fn pending_assignments(text: &str) -> i64 {
    let line = "taquilla_queue_tasks{queue=\"assignments\",state=\"pending\"} ";
    text.lines()
        .find_map(|l| l.strip_prefix(line))
        .unwrap_or_else(|| panic!("no {line} in {text}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_scrapes_within_the_window_share_one_count() {
    let app = production_app(|b| b.api(|a| a.metrics_cache_ttl(Duration::from_secs(2)))).await;
    let app = &app;
    let scrape = || async move {
        let reply = call(app, "GET", "/metrics", Some(METRICS), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        pending_assignments(&reply.text)
    };
    assert_eq!(scrape().await, 0);
    let assign = json!({"organizerId": "org_demo", "eventId": "ev_demo", "type": "prepaid", "tickets": 1, "price": 1});
    let reply = call(app, "POST", "/director/assign", Some(CLIENT), Some(assign)).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    // A task was created, but the second scrape inside the window did not query again.
    assert_eq!(scrape().await, 0);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(scrape().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_read_every_admin_view_and_cannot_act() {
    let app = production_app(|b| b).await;
    for path in [
        "/admin/queues",
        "/admin/workers",
        "/admin/tasks",
        "/admin/tasks?status=dead",
    ] {
        let reply = call(&app, "GET", path, Some(OPERATOR), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text);
    }
    let id = uuid::Uuid::now_v7();
    let acts = [
        ("POST", "/admin/tasks/retry?status=dead".to_string(), None),
        ("POST", format!("/admin/tasks/{id}/retry"), None),
        ("DELETE", format!("/admin/tasks/{id}"), None),
        ("POST", "/director/kpis/refresh".to_string(), None),
        (
            "POST",
            "/director/assign".to_string(),
            Some(
                json!({"organizerId": "org_demo", "eventId": "ev_demo", "type": "prepaid", "tickets": 1, "price": 1}),
            ),
        ),
        ("POST", format!("/tasks/{id}/cancel"), None),
    ];
    for (method, path, body) in acts {
        let reply = call(&app, method, &path, Some(OPERATOR), body).await;
        assert_error(&reply, StatusCode::FORBIDDEN, "forbidden");
    }
    // A client token sees no admin view at all; an admin still acts.
    assert_error(
        &call(&app, "GET", "/admin/tasks", Some(CLIENT), None).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let reply = call(
        &app,
        "POST",
        "/admin/tasks/retry?status=dead",
        Some(ADMIN),
        None,
    )
    .await;
    assert!(reply.status.is_success(), "{}", reply.text);
    let tasks: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(tasks, 0, "no operator call may create a task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoped_tokens_reach_only_their_scopes() {
    let app = production_app(|b| b.seed_demo()).await;
    let assign = json!({"organizerId": "org_demo", "eventId": "ev_demo", "type": "prepaid", "tickets": 1, "price": 1});
    let send = json!({"channel": "whatsapp"});

    // Reports only.
    let reply = call(
        &app,
        "POST",
        "/director/assign",
        Some(REPORTS_ONLY),
        Some(assign.clone()),
    )
    .await;
    assert_error(&reply, StatusCode::FORBIDDEN, "forbidden");
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("director"),
        "{}",
        reply.text
    );
    let reply = call(
        &app,
        "GET",
        "/director/organizers/org_demo/ledger",
        Some(REPORTS_ONLY),
        None,
    )
    .await;
    assert_error(&reply, StatusCode::FORBIDDEN, "forbidden");
    let reply = call(
        &app,
        "POST",
        "/events/ev_demo/guests/g1/send",
        Some(REPORTS_ONLY),
        Some(send.clone()),
    )
    .await;
    assert_error(&reply, StatusCode::FORBIDDEN, "forbidden");
    let reply = call(
        &app,
        "GET",
        "/director/reports/debt-aging",
        Some(REPORTS_ONLY),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);

    // Deliveries only.
    let reply = call(
        &app,
        "GET",
        "/director/reports/debt-aging",
        Some(DELIVERIES_ONLY),
        None,
    )
    .await;
    assert_error(&reply, StatusCode::FORBIDDEN, "forbidden");
    let reply = call(
        &app,
        "POST",
        "/director/payments",
        Some(DELIVERIES_ONLY),
        Some(json!({"organizerId": "org_demo", "amount": 1})),
    )
    .await;
    assert_error(&reply, StatusCode::FORBIDDEN, "forbidden");
    let reply = call(
        &app,
        "GET",
        "/wa/session/5215550000",
        Some(DELIVERIES_ONLY),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);

    // A token without scopes keeps every product route.
    let reply = call(&app, "POST", "/director/assign", Some(CLIENT), Some(assign)).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    let task = reply.body["taskId"].as_str().unwrap().to_string();
    let reply = call(
        &app,
        "GET",
        "/director/reports/debt-aging",
        Some(CLIENT),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    // Task routes need no scope, and still only show the caller's own tasks.
    let reply = call(&app, "GET", &format!("/tasks/{task}"), Some(CLIENT), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let reply = call(
        &app,
        "GET",
        &format!("/tasks/{task}"),
        Some(REPORTS_ONLY),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_an_oversized_body_with_the_json_413() {
    let app =
        production_app(|b| b.core(|c| c.deliveries.wa_webhook_secret = Some(SHARED_SECRET.into())))
            .await;
    let limit = 64 * 1024;
    let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(3 * 1024 * 1024));

    // The issue's case: 3 MB to the webhook, signed or not, declared or streamed.
    for secret in [SHARED_SECRET, "wrong"] {
        let reply = webhook(&app, &[("x-webhook-secret", secret)], &big).await;
        assert_error(&reply, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    }
    let chunks: Vec<Result<String, std::io::Error>> = vec![Ok(big.clone())];
    let streamed = Request::post("/wa/webhook")
        .header("content-type", "application/json")
        .header("x-webhook-secret", SHARED_SECRET)
        .body(Body::from_stream(futures::stream::iter(chunks)))
        .unwrap();
    let reply = send(&app, streamed).await;
    assert_error(&reply, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    // Just over the limit is refused, the limit itself is not.
    let at_limit = format!(r#"{{"pad":"{}"}}"#, "x".repeat(limit - 10));
    assert_eq!(at_limit.len(), limit);
    let reply = webhook(&app, &[("x-webhook-secret", SHARED_SECRET)], &at_limit).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let over = format!(r#"{{"pad":"{}"}}"#, "x".repeat(limit - 9));
    let reply = webhook(&app, &[("x-webhook-secret", SHARED_SECRET)], &over).await;
    assert_error(&reply, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");

    // Every documented route and method, with an admin token.
    let doc = send(
        &app,
        Request::get("/openapi.json").body(Body::empty()).unwrap(),
    )
    .await
    .body;
    assert!(
        doc["paths"].as_object().is_some_and(|p| p.len() >= 30),
        "{doc}"
    );
    let id = uuid::Uuid::now_v7().to_string();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{id}", &id)
            .replace("{key}", "exports/x/y.csv")
            .replace(['{', '}'], "");
        for method in item.as_object().unwrap().keys() {
            let req = Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(&concrete)
                .header("authorization", format!("Bearer {ADMIN}"))
                .header("content-type", "application/json")
                .header("content-length", big.len())
                .body(Body::from(big.clone()))
                .unwrap();
            let reply = send(&app, req).await;
            assert_eq!(
                reply.status,
                StatusCode::PAYLOAD_TOO_LARGE,
                "{method} {path}: {}",
                reply.text
            );
            assert_error(&reply, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redelivered_provider_event_makes_one_task() {
    let app =
        production_app(|b| b.core(|c| c.deliveries.wa_webhook_secret = Some(SHARED_SECRET.into())))
            .await;
    let auth = [("x-webhook-secret", SHARED_SECRET)];
    let event = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "statuses": [{"id": "wamid.dup", "status": "delivered", "timestamp": "1700000000"}],
        "messages": [{"from": "5215550000", "id": "wamid.in.dup", "timestamp": "1700000000", "type": "text"}]
    }}]}]});

    let first = webhook(&app, &auth, &event.to_string()).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let task = first.body["taskId"].clone();
    // Five redeliveries at once, one of them with the JSON laid out differently.
    let respaced = serde_json::to_string_pretty(&event).unwrap();
    let bodies = [
        event.to_string(),
        event.to_string(),
        respaced,
        event.to_string(),
        event.to_string(),
    ];
    let replies = futures::future::join_all(bodies.iter().map(|b| webhook(&app, &auth, b))).await;
    for reply in &replies {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_eq!(reply.body["taskId"], task, "{}", reply.text);
        assert_eq!(reply.body["duplicate"], true, "{}", reply.text);
    }
    let pool = &app.pool;
    let count = || async move {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM tasks WHERE kind = 'wa_inbound'")
            .fetch_one(pool)
            .await
            .unwrap()
    };
    assert_eq!(count().await, 1);

    // Five different new events at once: five tasks, each answered once.
    let fresh: Vec<String> = (0..5)
        .map(|i| {
            json!({"statuses": [{"id": format!("wamid.new.{i}"), "status": "read"}]}).to_string()
        })
        .collect();
    let replies = futures::future::join_all(fresh.iter().map(|b| webhook(&app, &auth, b))).await;
    for reply in &replies {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_eq!(reply.body["duplicate"], false, "{}", reply.text);
    }
    assert_eq!(count().await, 6);
}
