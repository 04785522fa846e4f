//! Deliveries end to end (issue 5): api → task → worker → provider, against an in-process
//! HTTP server playing 360dialog (wiremock) and a real SMTP sink (aiosmtpd), with the
//! delivery rows and the task rows checked after.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use axum::{
    body::Body,
    http::{Request as HttpRequest, StatusCode},
};
use engine::{retry::Backoff, AttemptError, Registry, TaskStatus};
use jobs::{kinds::delivery, queues as queue};
use serde_json::{json, Value};
use testkit::*;
use uuid::Uuid;
use wiremock::{
    matchers::{header, method, path},
    Mock, MockServer, Respond, ResponseTemplate,
};

const WAIT: Duration = Duration::from_secs(20);
const FAST: Backoff = Backoff::new(Duration::from_millis(50), Duration::from_millis(200));

/// The standard kinds with millisecond backoffs, so retry paths finish in a test's time.
fn fast_registry() -> Registry<jobs::Services> {
    let mut r = jobs::kinds::registry().unwrap();
    for mut spec in [
        engine::KindSpec::of::<jobs::kinds::delivery::Delivery>(),
        engine::KindSpec::of::<jobs::kinds::delivery_bulk::DeliveryBulk>(),
        engine::KindSpec::of::<jobs::kinds::wa_inbound::WaInbound>(),
    ] {
        spec.backoff = FAST;
        r.replace(spec);
    }
    r
}

async fn seed_guests(app: &TestApp) {
    app.seed_demo().await;
    sqlx::raw_sql(
        "INSERT INTO guests (id, event_id, name, email, phone, ticket_code) VALUES \
             ('g1', 'ev_demo', 'Ana Demo', 'ana@example.com', '+5215550000', 'TKT-DEMO-0001'), \
             ('g2', 'ev_demo', 'Beto Demo', 'beto@example.com', NULL, NULL), \
             ('g3', 'ev_demo', 'Caro Demo', NULL, '+5215550003', NULL);",
    )
    .execute(&app.pool)
    .await
    .unwrap();
}

/// The queues this file's workers serve.
const QUEUES: &[&str] = &[queue::DELIVERIES, queue::WEBHOOKS];

/// An app whose workers run the kinds with fast backoffs.
fn builder() -> TestAppBuilder {
    TestApp::builder().registry(fast_registry())
}

async fn send_ok(app: &TestApp, guest: &str, body: Value) -> Uuid {
    let (status, resp) = app.send("ev_demo", guest, body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{resp}");
    assert_eq!(resp["deliveryId"], resp["taskId"]);
    resp["taskId"].as_str().unwrap().parse().unwrap()
}

#[derive(Debug)]
struct DeliveryRow {
    status: String,
    provider_message_id: Option<String>,
    error: Option<Value>,
}

async fn delivery_row(app: &TestApp, id: Uuid) -> DeliveryRow {
    let (status, provider_message_id, error): (String, Option<String>, Option<Value>) =
        sqlx::query_as("SELECT status, provider_message_id, error FROM deliveries WHERE id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    DeliveryRow {
        status,
        provider_message_id,
        error,
    }
}

fn wa_ok(id: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": "5215550000", "wa_id": "5215550000"}],
        "messages": [{"id": id}],
    }))
}

/// An app whose WhatsApp client talks to `server`.
async fn app_with_whatsapp(server: &MockServer) -> TestApp {
    let provider = server.uri();
    builder()
        .core(move |c| {
            c.deliveries.whatsapp_api_url = provider;
            c.deliveries.whatsapp_api_key = Some("test-key".into());
        })
        .spawn()
        .await
}

/// Posts a webhook, with the shared secret header when given.
async fn post_webhook(app: &TestApp, secret: Option<&str>, body: &str) -> (StatusCode, Value) {
    match secret {
        Some(s) => app.webhook(&[("x-webhook-secret", s)], body).await,
        None => app.webhook(&[], body).await,
    }
}

/// Posts a webhook and waits until its `wa_inbound` task finished.
async fn webhook_applied(app: &TestApp, payload: Value) -> Value {
    let (status, resp) = post_webhook(app, None, &payload.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    let id: Uuid = resp["taskId"].as_str().unwrap().parse().unwrap();
    let rec = app.wait_finished(id, WAIT).await;
    assert_eq!(rec.status(), TaskStatus::Completed, "{:?}", rec.error);
    rec.result.unwrap()
}

fn cloud_statuses(statuses: Value) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{
        "field": "messages",
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                  "statuses": statuses}}]}]})
}

fn cloud_inbound(from: &str, ts: i64) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{
        "field": "messages",
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                  "contacts": [{"profile": {"name": "Ana"}, "wa_id": from}],
                  "messages": [{"from": from, "id": format!("wamid.in.{ts}"), "timestamp": ts.to_string(),
                                "type": "text", "text": {"body": "hola"}}]}}]}]})
}

// ------------------------------------------------------------------ whatsapp ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn whatsapp_sends_a_template_outside_the_window_and_text_inside() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/messages"))
        .and(header("D360-API-KEY", "test-key"))
        .and(header("content-type", "application/json"))
        .respond_with(wa_ok("wamid.TEMPLATE"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/messages"))
        .respond_with(wa_ok("wamid.TEXT"))
        .mount(&server)
        .await;
    let app = app_with_whatsapp(&server).await;
    seed_guests(&app).await;
    app.add_worker(QUEUES);

    // The seed's smoke-test body: kind defaults to invitation.
    let id = send_ok(&app, "g1", json!({"channel": "whatsapp"})).await;
    let rec = app.wait_finished(id, WAIT).await;
    assert_eq!(rec.status(), TaskStatus::Completed, "{:?}", rec.error);
    assert_eq!(rec.result.as_ref().unwrap()["mode"], "template");
    let row = delivery_row(&app, id).await;
    assert_eq!(row.status, "sent");
    assert_eq!(row.provider_message_id.as_deref(), Some("wamid.TEMPLATE"));

    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(body["messaging_product"], "whatsapp");
    assert_eq!(body["to"], "5215550000");
    assert_eq!(body["type"], "template");
    assert_eq!(body["template"]["name"], "invitation");
    assert_eq!(body["template"]["language"]["code"], "es_MX");
    let params = &body["template"]["components"][0]["parameters"];
    assert_eq!(params[0]["text"], "Ana Demo");
    assert_eq!(params[1]["text"], "Demo Fest");

    // The guest writes: the window opens and the next message is free-form text.
    let now = chrono::Utc::now().timestamp();
    webhook_applied(&app, cloud_inbound("5215550000", now)).await;
    let id = send_ok(
        &app,
        "g1",
        json!({"channel": "whatsapp", "kind": "reminder"}),
    )
    .await;
    let rec = app.wait_finished(id, WAIT).await;
    assert_eq!(rec.status(), TaskStatus::Completed, "{:?}", rec.error);
    let requests = server.received_requests().await.unwrap();
    let body: Value = serde_json::from_slice(&requests[1].body).unwrap();
    assert_eq!(body["type"], "text");
    assert!(body["text"]["body"].as_str().unwrap().contains("Demo Fest"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn whatsapp_500_then_200_is_retried_and_sent_once() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_body_string("upstream exploded"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(wa_ok("wamid.OK"))
        .mount(&server)
        .await;
    let app = app_with_whatsapp(&server).await;
    seed_guests(&app).await;
    app.add_worker(QUEUES);
    let id = send_ok(&app, "g1", json!({"channel": "whatsapp"})).await;
    let rec = app.wait_finished(id, WAIT).await;
    assert_eq!(rec.status(), TaskStatus::Completed, "{:?}", rec.error);
    assert_eq!(rec.attempts, 2);
    let errors: Vec<AttemptError> = serde_json::from_value(rec.errors).unwrap();
    assert_eq!(errors[0].code, "provider_unavailable");
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
    assert_eq!(delivery_row(&app, id).await.status, "sent");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn whatsapp_429_waits_for_retry_after() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(wa_ok("wamid.LATER"))
        .mount(&server)
        .await;
    let app = app_with_whatsapp(&server).await;
    seed_guests(&app).await;
    app.add_worker(QUEUES);
    let id = send_ok(&app, "g1", json!({"channel": "whatsapp"})).await;
    let rec = app.wait_finished(id, WAIT).await;
    assert_eq!(rec.status(), TaskStatus::Completed, "{:?}", rec.error);
    let errors: Vec<AttemptError> = serde_json::from_value(rec.errors).unwrap();
    assert_eq!(errors[0].code, "provider_rate_limited");
    // The backoff alone would retry within 50 ms; Retry-After: 1 is the floor (`at` is
    // stamped a moment after the retry time was computed, hence the margin).
    let delay = errors[0].retry_at.unwrap() - errors[0].at;
    assert!(delay >= chrono::TimeDelta::milliseconds(950), "{delay:?}");
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn whatsapp_400_fails_at_once_with_the_providers_reason() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {
            "message": "(#131030) Recipient phone number not in allowed list",
            "type": "OAuthException", "code": 131030,
        }})))
        .mount(&server)
        .await;
    let app = app_with_whatsapp(&server).await;
    seed_guests(&app).await;
    app.add_worker(QUEUES);
    let id = send_ok(&app, "g1", json!({"channel": "whatsapp"})).await;
    let rec = app.wait_finished(id, WAIT).await;
    assert_eq!(rec.status(), TaskStatus::Failed);
    assert_eq!(rec.attempts, 1, "a 4xx is never retried");
    let err = rec.error.unwrap();
    assert_eq!(err["code"], "provider_rejected");
    assert!(err["message"]
        .as_str()
        .unwrap()
        .contains("not in allowed list"));
    let row = delivery_row(&app, id).await;
    assert_eq!(row.status, "failed");
    assert!(row.error.unwrap()["message"]
        .as_str()
        .unwrap()
        .contains("not in allowed list"));
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn whatsapp_exhausting_retries_is_dead_and_the_delivery_failed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let app = app_with_whatsapp(&server).await;
    seed_guests(&app).await;
    app.add_worker(QUEUES);
    let id = send_ok(&app, "g1", json!({"channel": "whatsapp"})).await;
    let rec = app.wait_finished(id, WAIT).await;
    assert_eq!(rec.status(), TaskStatus::Dead);
    assert_eq!(rec.attempts, delivery::MAX_ATTEMPTS);
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        delivery::MAX_ATTEMPTS as usize
    );
    let row = delivery_row(&app, id).await;
    assert_eq!(row.status, "failed");
    assert_eq!(row.error.unwrap()["attempt"], delivery::MAX_ATTEMPTS);
    app.stop().await;
}

// ------------------------------------------------------------------- webhook ----

/// A delivery already sent with a known provider message id.
async fn sent_delivery(app: &TestApp, message_id: &str) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO deliveries (id, event_id, guest_id, channel, kind, status, provider_message_id, sent_at) \
         VALUES ($1, 'ev_demo', 'g1', 'whatsapp', 'invitation', 'sent', $2, now())",
    )
    .bind(id)
    .bind(message_id)
    .execute(&app.pool)
    .await
    .unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhook_statuses_only_move_forward_and_duplicates_are_harmless() {
    let app = builder().spawn().await;
    seed_guests(&app).await;
    app.add_worker(QUEUES);
    let a = sent_delivery(&app, "wamid.A").await;
    let b = sent_delivery(&app, "wamid.B").await;
    let ts = chrono::Utc::now().timestamp();
    let st = |id: &str, status: &str| json!({"id": id, "status": status, "timestamp": ts.to_string(), "recipient_id": "5215550000"});

    // Out of order: read arrives before delivered; then a late sent, and duplicates.
    let r = webhook_applied(&app, cloud_statuses(json!([st("wamid.A", "read")]))).await;
    assert_eq!(r["statuses"], 1);
    webhook_applied(
        &app,
        cloud_statuses(json!([
            st("wamid.A", "delivered"),
            st("wamid.A", "sent"),
            st("wamid.A", "read")
        ])),
    )
    .await;
    // The flat 360dialog v1 shape, with a failure that may not undo `read`.
    webhook_applied(&app, json!({"statuses": [st("wamid.A", "failed"), st("wamid.B", "delivered"), st("wamid.B", "delivered")]})).await;
    let row = delivery_row(&app, a).await;
    assert_eq!(row.status, "read");
    assert!(row.error.is_none());
    let (delivered_at, read_at): (
        Option<chrono::DateTime<chrono::Utc>>,
        Option<chrono::DateTime<chrono::Utc>>,
    ) = sqlx::query_as("SELECT delivered_at, read_at FROM deliveries WHERE id = $1")
        .bind(a)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(
        delivered_at.is_some() && read_at.is_some(),
        "read implies delivered"
    );
    assert_eq!(delivery_row(&app, b).await.status, "delivered");

    // A failure report on a sent message fails it, with the provider's reason.
    let c = sent_delivery(&app, "wamid.C").await;
    let failed = json!({"id": "wamid.C", "status": "failed", "timestamp": ts.to_string(), "recipient_id": "5215550000",
        "errors": [{"code": 131026, "title": "Message undeliverable"}]});
    webhook_applied(&app, cloud_statuses(json!([failed]))).await;
    webhook_applied(&app, cloud_statuses(json!([st("wamid.C", "delivered")]))).await;
    let row = delivery_row(&app, c).await;
    assert_eq!(row.status, "failed", "failed is final");
    assert_eq!(row.error.unwrap()["message"], "Message undeliverable");

    // The smoke test's empty payload is accepted and does nothing.
    let r = webhook_applied(&app, json!({})).await;
    assert_eq!(r["statuses"], 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhook_checks_the_shared_secret_and_rejects_bad_json() {
    let app = builder()
        .core(|c| c.deliveries.wa_webhook_secret = Some("s3cret-value".into()))
        .spawn()
        .await;
    let (status, body) = post_webhook(&app, None, "{}").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _) = post_webhook(&app, Some("wrong"), "{}").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = post_webhook(&app, Some("s3cret-value"), "{not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "malformed_json");
    let (status, _) = post_webhook(&app, Some("s3cret-value"), "[1,2]").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = post_webhook(&app, Some("s3cret-value"), "{}").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Accepted means stored: the task row exists before the 200.
    let id: Uuid = body["taskId"].as_str().unwrap().parse().unwrap();
    assert_eq!(app.task(id).await.kind, "wa_inbound");
    assert!(body["requestId"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn inbound_messages_open_the_window_which_expires_after_24_hours() {
    let app = builder().spawn().await;
    seed_guests(&app).await;
    app.add_worker(QUEUES);
    let session = |phone: &str| {
        let app = &app;
        let path = format!("/wa/session/{phone}");
        async move { app.call("GET", &path, Some(DEMO), None).await }
    };
    let (status, body) = session("5215550000").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["phone"], "+5215550000");
    assert_eq!(body["open"], false);
    assert!(body["lastInboundAt"].is_null());

    let now = chrono::Utc::now().timestamp();
    webhook_applied(&app, cloud_inbound("5215550000", now - 60)).await;
    // An older message arriving late does not move the window back.
    webhook_applied(&app, json!({"messages": [{"from": "5215550000", "id": "x", "timestamp": (now - 7200).to_string(), "type": "text", "text": {"body": "old"}}]})).await;
    let (_, body) = session("+5215550000").await;
    assert_eq!(body["open"], true, "{body}");
    let last: chrono::DateTime<chrono::Utc> =
        body["lastInboundAt"].as_str().unwrap().parse().unwrap();
    assert_eq!(last.timestamp(), now - 60);
    let expires: chrono::DateTime<chrono::Utc> =
        body["expiresAt"].as_str().unwrap().parse().unwrap();
    assert_eq!(expires - last, chrono::TimeDelta::hours(24));

    // 25 hours ago: the window has expired.
    webhook_applied(&app, cloud_inbound("5215550009", now - 25 * 3600)).await;
    let (_, body) = session("5215550009").await;
    assert_eq!(body["open"], false, "{body}");
    assert!(body["lastInboundAt"].is_string());

    for bad in ["123", "abc", "%2B%2B52155500001", "1234567890123456"] {
        let (status, body) = session(bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body["error"]["fields"]["phone"].is_string());
    }
    app.stop().await;
}

// ----------------------------------------------------------------- bad input ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_on_the_delivery_routes_is_a_4xx_naming_the_problem() {
    let app = builder().spawn().await;
    seed_guests(&app).await;
    let cases: Vec<(&str, Value, StatusCode, &str)> = vec![
        (
            "/events/ev_demo/guests/g1/send",
            json!({}),
            StatusCode::BAD_REQUEST,
            "channel",
        ),
        (
            "/events/ev_demo/guests/g1/send",
            json!({"channel": "sms"}),
            StatusCode::BAD_REQUEST,
            "channel",
        ),
        (
            "/events/ev_demo/guests/g1/send",
            json!({"channel": 1}),
            StatusCode::BAD_REQUEST,
            "channel",
        ),
        (
            "/events/ev_demo/guests/g1/send",
            json!({"channel": "email", "kind": "spam"}),
            StatusCode::BAD_REQUEST,
            "kind",
        ),
        (
            "/events/ev_demo/guests/g1/send",
            json!({"channel": "email", "template": "Bad Name!"}),
            StatusCode::BAD_REQUEST,
            "template",
        ),
        (
            "/events/ev_demo/guests/g1/send",
            json!({"channel": "email", "extra": true}),
            StatusCode::BAD_REQUEST,
            "extra",
        ),
        (
            "/events/nope/guests/g1/send",
            json!({"channel": "email"}),
            StatusCode::NOT_FOUND,
            "eventId",
        ),
        (
            "/events/ev_demo/guests/nope/send",
            json!({"channel": "email"}),
            StatusCode::NOT_FOUND,
            "guestId",
        ),
        (
            "/events/ev_demo/guests/g2/send",
            json!({"channel": "whatsapp"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "phone",
        ),
        (
            "/events/ev_demo/guests/g3/send",
            json!({"channel": "email"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "email",
        ),
        (
            "/events/ev_demo/deliveries",
            json!({"channel": "email"}),
            StatusCode::BAD_REQUEST,
            "guestIds",
        ),
        (
            "/events/ev_demo/deliveries",
            json!({"channel": "email", "all": true, "guestIds": ["g1"]}),
            StatusCode::BAD_REQUEST,
            "guestIds",
        ),
        (
            "/events/ev_demo/deliveries",
            json!({"channel": "email", "all": false}),
            StatusCode::BAD_REQUEST,
            "guestIds",
        ),
        (
            "/events/ev_demo/deliveries",
            json!({"channel": "email", "guestIds": []}),
            StatusCode::BAD_REQUEST,
            "guestIds",
        ),
        (
            "/events/ev_demo/deliveries",
            json!({"channel": "email", "guestIds": [1]}),
            StatusCode::BAD_REQUEST,
            "guestIds",
        ),
        (
            "/events/ev_demo/deliveries",
            json!({"channel": "email", "guestIds": "g1"}),
            StatusCode::BAD_REQUEST,
            "guestIds",
        ),
        (
            "/events/ev_demo/deliveries",
            json!({"channel": "email", "all": "yes"}),
            StatusCode::BAD_REQUEST,
            "all",
        ),
        (
            "/events/nope/deliveries",
            json!({"channel": "email", "all": true}),
            StatusCode::NOT_FOUND,
            "eventId",
        ),
    ];
    for (path, body, expected, field) in cases {
        let (status, resp) = app.call("POST", path, Some(DEMO), Some(body.clone())).await;
        assert_eq!(status, expected, "{path} {body}: {resp}");
        assert!(
            resp["error"]["fields"][field].is_string(),
            "{path} {body}: {resp} should name {field}"
        );
    }
    // Not JSON, no auth, wrong method: still 4xx.
    let req = HttpRequest::builder()
        .method("POST")
        .uri("/events/ev_demo/guests/g1/send")
        .header("authorization", format!("Bearer {DEMO}"))
        .header("content-type", "application/json")
        .body(Body::from("{\"channel\":"))
        .unwrap();
    let resp = app.request(req).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let (status, _) = app
        .call(
            "POST",
            "/events/ev_demo/guests/g1/send",
            None,
            Some(json!({"channel": "email"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = app
        .call("GET", "/events/ev_demo/guests/g1/send", Some(DEMO), None)
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let long = "x".repeat(65);
    let (status, _) = app
        .call(
            "POST",
            &format!("/events/{long}/guests/g1/send"),
            Some(DEMO),
            Some(json!({"channel": "email"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Nothing reached a queue.
    let tasks: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let deliveries: i64 = sqlx::query_scalar("SELECT count(*) FROM deliveries")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!((tasks, deliveries), (0, 0));
}

// ----------------------------------------------------------------- mock mode ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_credentials_sends_go_to_the_outbox() {
    let app = builder().spawn().await;
    seed_guests(&app).await;
    app.add_worker(QUEUES);
    let wa = send_ok(&app, "g1", json!({"channel": "whatsapp"})).await;
    let mail = send_ok(&app, "g1", json!({"channel": "email", "kind": "reminder"})).await;
    for id in [wa, mail] {
        let rec = app.wait_finished(id, WAIT).await;
        assert_eq!(rec.status(), TaskStatus::Completed, "{:?}", rec.error);
        assert_eq!(delivery_row(&app, id).await.status, "sent");
    }
    let outbox = &app.config.deliveries.outbox_dir;
    let lines = std::fs::read_to_string(outbox.join("whatsapp.jsonl")).unwrap();
    let line: Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert_eq!(line["deliveryId"], wa.to_string());
    assert_eq!(line["request"]["to"], "5215550000");
    let eml = std::fs::read_to_string(outbox.join("mail").join(format!("{mail}.eml"))).unwrap();
    assert!(eml.contains("Subject: Recordatorio: Demo Fest"));
    let _ = std::fs::remove_dir_all(outbox);
    app.stop().await;
}

// --------------------------------------------------------------------- email ----

fn decode_qr(png_bytes: &[u8]) -> String {
    let decoder = png::Decoder::new(png_bytes);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    let (w, h) = (info.width as usize, info.height as usize);
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| buf[y * w + x]);
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the image");
    grids[0].decode().unwrap().1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn email_goes_through_a_real_smtp_server_with_both_parts_and_the_qr() {
    let Some(sink) = SmtpSink::start().await else {
        return skipped("aiosmtpd is not installed (set SMTP_SINK_PYTHON or run scripts/test.sh)");
    };
    let smtp_url = format!("smtp://127.0.0.1:{}", sink.port);
    let app = builder()
        .core(move |c| {
            c.deliveries.smtp_url = Some(smtp_url);
            c.deliveries.email_from = "Taquilla <tickets@taquilla.test>".into();
        })
        .spawn()
        .await;
    seed_guests(&app).await;
    app.add_worker(QUEUES);
    let id = send_ok(&app, "g1", json!({"channel": "email"})).await;
    let rec = app.wait_finished(id, WAIT).await;
    assert_eq!(rec.status(), TaskStatus::Completed, "{:?}", rec.error);
    assert_eq!(rec.result.unwrap()["mode"], "email");
    assert_eq!(delivery_row(&app, id).await.status, "sent");

    use mail_parser::MimeHeaders;
    let raw = sink.wait_message().await;
    let msg = mail_parser::MessageParser::default().parse(&raw).unwrap();
    assert_eq!(msg.subject(), Some("Tu invitación a Demo Fest"));
    let to = msg.to().unwrap().first().unwrap();
    assert_eq!(to.address(), Some("ana@example.com"));
    let text = msg.body_text(0).unwrap();
    assert!(
        text.contains("Ana Demo") && text.contains("Demo Fest") && text.contains("TKT-DEMO-0001"),
        "{text}"
    );
    let html = msg.body_html(0).unwrap();
    assert!(html.contains("<strong>Demo Fest</strong>"), "{html}");
    let qr = msg.attachments().next().expect("the QR attachment");
    assert_eq!(qr.attachment_name(), Some("entrada-qr.png"));
    assert_eq!(decode_qr(qr.contents()), "TKT-DEMO-0001");
    app.stop().await;
}

// ---------------------------------------------------------------------- bulk ----

/// Plays 360dialog failing every tenth call with a 500; counts accepted sends per number.
#[derive(Clone, Default)]
struct FlakyProvider {
    calls: Arc<AtomicUsize>,
    accepted: Arc<Mutex<HashMap<String, usize>>>,
}

impl Respond for FlakyProvider {
    fn respond(&self, req: &wiremock::Request) -> ResponseTemplate {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if n % 10 == 7 {
            return ResponseTemplate::new(500);
        }
        let body: Value = serde_json::from_slice(&req.body).unwrap_or_default();
        let to = body["to"].as_str().unwrap_or("").to_string();
        *self.accepted.lock().unwrap().entry(to.clone()).or_default() += 1;
        wa_ok(&format!("wamid.{to}.{n}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bulk_send_to_2000_guests_with_a_flaky_provider_sends_each_once() {
    let server = MockServer::start().await;
    let provider = FlakyProvider::default();
    Mock::given(method("POST"))
        .respond_with(provider.clone())
        .mount(&server)
        .await;
    let app = app_with_whatsapp(&server).await;
    app.seed_demo().await;
    sqlx::query(
        "INSERT INTO guests (id, event_id, name, phone) \
         SELECT 'b' || i, 'ev_demo', 'Guest ' || i, '+52155' || lpad(i::text, 6, '0') \
         FROM generate_series(1, 2000) AS i",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    // One guest without a phone: skipped, not failed.
    sqlx::query(
        "INSERT INTO guests (id, event_id, name) VALUES ('nophone', 'ev_demo', 'No Phone')",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let mut cfg = app.worker_config(&[queue::DELIVERIES]);
    cfg.queues.insert(queue::DELIVERIES.into(), 64);
    let worker = RunningWorker::start(cfg, fast_registry());

    let (status, resp) = app
        .bulk(
            "ev_demo",
            json!({"channel": "whatsapp", "kind": "reminder", "all": true}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{resp}");
    let parent: Uuid = resp["taskId"].as_str().unwrap().parse().unwrap();
    let rec = app.wait_finished(parent, Duration::from_secs(60)).await;
    assert_eq!(rec.status(), TaskStatus::Completed, "{:?}", rec.error);
    assert_eq!(rec.progress, 100);
    let result = rec.result.unwrap();
    assert_eq!(result["total"], 2000, "{result}");
    assert_eq!(result["skipped"]["count"], 1);
    let sent = result["sent"].as_i64().unwrap();
    let failed = result["failed"].as_i64().unwrap() + result["dead"].as_i64().unwrap();
    assert_eq!(sent + failed, 2000, "{result}");

    // Every guest ends sent or failed, and the provider accepted no guest twice.
    let by_status: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, count(*) FROM deliveries WHERE bulk_task_id = $1 GROUP BY status",
    )
    .bind(parent)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let by_status: HashMap<String, i64> = by_status.into_iter().collect();
    assert_eq!(
        by_status.get("sent").copied().unwrap_or(0),
        sent,
        "{by_status:?}"
    );
    assert_eq!(
        by_status.get("failed").copied().unwrap_or(0),
        failed,
        "{by_status:?}"
    );
    assert_eq!(by_status.get("queued"), None);
    let accepted = provider.accepted.lock().unwrap().clone();
    assert!(
        accepted.values().all(|n| *n == 1),
        "someone got two messages"
    );
    assert_eq!(accepted.len() as i64, sent);
    assert!(
        provider.calls.load(Ordering::SeqCst) > 2000,
        "the 10% failures were retried"
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bulk_send_to_named_guests_reports_skipped_and_missing() {
    let app = builder().spawn().await;
    seed_guests(&app).await;
    app.add_worker(QUEUES);
    let (status, resp) = app
        .bulk(
            "ev_demo",
            json!({"channel": "whatsapp", "guestIds": ["g1", "g2", "g3", "ghost", "g1"]}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{resp}");
    let parent: Uuid = resp["taskId"].as_str().unwrap().parse().unwrap();
    let rec = app.wait_finished(parent, WAIT).await;
    assert_eq!(rec.status(), TaskStatus::Completed, "{:?}", rec.error);
    let r = rec.result.unwrap();
    assert_eq!(r["total"], 2, "{r}");
    assert_eq!(r["sent"], 2, "{r}");
    assert_eq!(r["skipped"]["guestIds"], json!(["g2"]), "g2 has no phone");
    assert_eq!(r["missing"]["guestIds"], json!(["ghost"]));
    let guests: Vec<String> = sqlx::query_scalar(
        "SELECT guest_id FROM deliveries WHERE bulk_task_id = $1 ORDER BY guest_id",
    )
    .bind(parent)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        guests,
        ["g1", "g3"],
        "one delivery per guest, duplicates in the list ignored"
    );
    let _ = std::fs::remove_dir_all(&app.config.deliveries.outbox_dir);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_global_rate_limit_spreads_sends_over_windows() {
    let app = builder()
        .core(|c| c.deliveries.whatsapp_max_per_second = 5)
        .seed_demo()
        .spawn()
        .await;
    sqlx::query(
        "INSERT INTO guests (id, event_id, name, phone) \
         SELECT 'r' || i, 'ev_demo', 'Guest ' || i, '+52155' || lpad(i::text, 6, '0') \
         FROM generate_series(1, 12) AS i",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    app.add_worker(QUEUES);
    let (status, resp) = app
        .bulk("ev_demo", json!({"channel": "whatsapp", "all": true}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{resp}");
    let parent: Uuid = resp["taskId"].as_str().unwrap().parse().unwrap();
    let rec = app.wait_finished(parent, WAIT).await;
    assert_eq!(rec.result.unwrap()["sent"], 12);
    // 12 sends at 5 per one-second window need at least three windows.
    let spread: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM max(sent_at) - min(sent_at))::float8 FROM deliveries WHERE bulk_task_id = $1",
    )
    .bind(parent)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(spread >= 1.0, "12 sends took only {spread}s at 5/s");
    let _ = std::fs::remove_dir_all(&app.config.deliveries.outbox_dir);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delivery_whose_worker_died_on_the_last_attempt_ends_failed() {
    let app = builder().spawn().await;
    seed_guests(&app).await;
    // A delivery task on its last attempt, running alone (it already lost workers while
    // sharing them), whose worker vanished (lease expired): that loss counts.
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO deliveries (id, event_id, guest_id, channel, kind, status, task_id) \
         VALUES ($1, 'ev_demo', 'g1', 'whatsapp', 'invitation', 'queued', $1)",
    )
    .bind(id)
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO tasks (id, kind, queue, status, params, attempts, max_attempts, requester, \
             started_at, lease_expires_at, lease_losses, isolate) \
         VALUES ($1, 'delivery', 'deliveries', 'running', '{}', 7, 5, 'demo', now(), \
             now() - interval '1 second', 2, true)",
    )
    .bind(id)
    .execute(&app.pool)
    .await
    .unwrap();
    app.add_worker(QUEUES);
    let rec = app.wait_finished(id, WAIT).await;
    assert_eq!(rec.status(), TaskStatus::Dead);
    let row = delivery_row(&app, id).await;
    assert_eq!(row.status, "failed");
    assert_eq!(row.error.unwrap()["code"], "worker_lost");
    app.stop().await;
}
