//! Scheduled and delayed work for clients (issue 13): a send with `sendAt` is `scheduled`,
//! kept in Postgres only (never pushed to Redis before its time), not sent before it, sent
//! right after it, and cancellable until it starts; `runAt`/`delaySeconds` on the other
//! enqueue routes, and their bad forms refused naming the field.

use std::time::Duration;

use axum::http::StatusCode;
use chrono::{SecondsFormat, Utc};
use engine::TaskStatus;
use jobs::queues;
use serde_json::{json, Value};
use testkit::{TestApp, DEMO};
use uuid::Uuid;
use wiremock::{
    matchers::{method, path},
    Mock, MockServer, ResponseTemplate,
};

async fn app_with_whatsapp(server: &MockServer) -> TestApp {
    Mock::given(method("POST"))
        .and(path("/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "messaging_product": "whatsapp",
            "contacts": [{"input": "5215550000", "wa_id": "5215550000"}],
            "messages": [{"id": "wamid.scheduled"}]})))
        .mount(server)
        .await;
    let provider = server.uri();
    let app = TestApp::builder()
        .seed_demo()
        .core(move |c| {
            c.deliveries.whatsapp_api_url = provider;
            c.deliveries.whatsapp_api_key = Some("test-key".into());
        })
        .workers(&[queues::DELIVERIES])
        .spawn()
        .await;
    sqlx::raw_sql(
        "INSERT INTO guests (id, event_id, name, email, phone) VALUES \
             ('g1', 'ev_demo', 'Ana Demo', 'ana@example.com', '+5215550000')",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    app
}

fn in_seconds(s: i64) -> String {
    (Utc::now() + chrono::Duration::seconds(s)).to_rfc3339_opts(SecondsFormat::Millis, true)
}

async fn sends(server: &MockServer) -> usize {
    server.received_requests().await.unwrap().len()
}

async fn pushed(app: &TestApp, id: Uuid) -> bool {
    sqlx::query_scalar("SELECT pushed_at IS NOT NULL FROM tasks WHERE id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// A WhatsApp reminder to g1 with `sendAt` `seconds` from now: accepted as `scheduled`.
async fn reminder_in(app: &TestApp, seconds: i64) -> Uuid {
    let (status, reply) = app
        .send(
            "ev_demo",
            "g1",
            json!({"channel": "whatsapp", "kind": "reminder", "sendAt": in_seconds(seconds)}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
    assert_eq!(reply["status"], "scheduled");
    reply["taskId"].as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_send_at_waits_for_its_time_then_goes() {
    let server = MockServer::start().await;
    let app = app_with_whatsapp(&server).await;
    let id = reminder_in(&app, 3).await;
    let (_, task) = app.get_task(id, DEMO).await;
    assert_eq!(task["status"], "scheduled", "{task}");

    tokio::time::sleep(Duration::from_millis(2_000)).await;
    assert_eq!(sends(&server).await, 0, "nothing sent before sendAt");
    assert!(!pushed(&app, id).await, "Redis does not hold delayed work");
    let rec = app.wait_for(id, TaskStatus::Completed).await;
    assert_eq!(sends(&server).await, 1);
    let late = rec.started_at.unwrap() - rec.run_at;
    assert!(
        late >= chrono::Duration::zero(),
        "started {late} after sendAt, never before"
    );
    let status: String = sqlx::query_scalar("SELECT status FROM deliveries WHERE id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(status, "sent");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_scheduled_send_is_cancellable_until_it_starts() {
    let server = MockServer::start().await;
    let app = app_with_whatsapp(&server).await;
    let id = reminder_in(&app, 30).await;
    let (status, cancelled) = app.cancel(id, DEMO).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    let (status, error): (String, Value) =
        sqlx::query_as("SELECT status, error FROM deliveries WHERE id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(status, "failed", "the delivery ends with its task: {error}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sends(&server).await, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_times_are_checked_and_named() {
    let app = TestApp::builder().seed_demo().spawn().await;
    let assign = |extra: Value| {
        let mut body = json!({"organizerId": "org_demo", "eventId": "ev_demo",
                              "type": "prepaid", "tickets": 1, "price": 10});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    for (extra, field) in [
        (json!({"runAt": "tomorrow"}), "runAt"),
        (json!({"runAt": "2026-12-24 09:00"}), "runAt"),
        (json!({"runAt": 1_700_000_000}), "runAt"),
        (json!({"runAt": in_seconds(60), "delaySeconds": 5}), "runAt"),
        (json!({"delaySeconds": -1}), "delaySeconds"),
        (json!({"delaySeconds": 1.5}), "delaySeconds"),
        (json!({"delaySeconds": 400 * 86_400}), "delaySeconds"),
        (json!({"sendAt": in_seconds(60)}), "sendAt"),
    ] {
        let (status, reply) = app.assign(assign(extra.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{extra} → {reply}");
        assert!(
            reply["error"]["fields"][field].is_string(),
            "{extra} names {field}: {reply}"
        );
    }
    let (status, later) = app.assign(assign(json!({"delaySeconds": 3600}))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{later}");
    assert_eq!(later["status"], "scheduled");
    // A time already past, or a zero delay: due now.
    for extra in [
        json!({"runAt": "2020-01-01T00:00:00Z"}),
        json!({"delaySeconds": 0}),
        json!({"runAt": null, "delaySeconds": null}),
    ] {
        let (status, now) = app.assign(assign(extra.clone())).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{extra} → {now}");
        assert_eq!(now["status"], "pending", "{extra}");
    }
    app.stop().await;
}
