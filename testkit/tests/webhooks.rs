//! A provider event delivered several times (redelivery, or concurrent retries) is applied
//! once: one `wa_inbound` task, one status transition, one window update (issue 10 §2).

use std::time::Duration;

use axum::http::StatusCode;
use engine::TaskStatus;
use jobs::queues as queue;
use serde_json::{json, Value};
use testkit::TestApp;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_event_five_times_at_once_is_applied_once() {
    let app = TestApp::builder()
        .seed_demo()
        .registry(jobs::kinds::registry().unwrap())
        .spawn()
        .await;
    sqlx::raw_sql(
        "INSERT INTO guests (id, event_id, name, phone) VALUES ('g1', 'ev_demo', 'Ana', '+5215550000'); \
         INSERT INTO deliveries (id, event_id, guest_id, channel, kind, status, provider_message_id, sent_at) \
         VALUES ('0190a0c0-0000-7000-8000-000000000001', 'ev_demo', 'g1', 'whatsapp', 'invitation', 'sent', 'wamid.DUP', now());",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    app.add_worker(&[queue::WEBHOOKS]);
    let ts = chrono::Utc::now().timestamp().to_string();
    let event = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "statuses": [{"id": "wamid.DUP", "status": "delivered", "timestamp": ts, "recipient_id": "5215550000"}],
        "messages": [{"from": "5215550000", "id": "wamid.in.DUP", "timestamp": ts, "type": "text", "text": {"body": "hola"}}]
    }}]}]});

    let replies = {
        let body = event.to_string();
        futures::future::join_all((0..5).map(|_| app.webhook(&[], &body))).await
    };
    let mut ids = Vec::new();
    for (status, body) in &replies {
        assert_eq!(*status, StatusCode::OK, "{body}");
        ids.push(body["taskId"].as_str().unwrap().parse::<Uuid>().unwrap());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids.len(),
        1,
        "every redelivery answers the first call's task"
    );
    let rec = app.wait_finished(ids[0], Duration::from_secs(20)).await;
    assert_eq!(rec.status(), TaskStatus::Completed, "{:?}", rec.error);
    // A late redelivery, after the first call was applied, changes nothing either.
    let (status, body) = app.webhook(&[], &event.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["taskId"].as_str().unwrap(), ids[0].to_string());
    app.stop().await;

    // Effects summed over every wa_inbound task there is: one transition, one window touch.
    let results: Vec<Value> = sqlx::query_scalar(
        "SELECT result FROM tasks WHERE kind = 'wa_inbound' AND result IS NOT NULL",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let sum = |field: &str| {
        results
            .iter()
            .map(|r| r[field].as_i64().unwrap())
            .sum::<i64>()
    };
    assert_eq!(sum("statuses"), 1, "{results:?}");
    assert_eq!(sum("sessionsTouched"), 1, "{results:?}");
    let status: String =
        sqlx::query_scalar("SELECT status FROM deliveries WHERE provider_message_id = 'wamid.DUP'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(status, "delivered");
}
