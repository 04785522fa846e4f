//! Provider faults through the `payment_intent` kind, against wiremock playing the providers'
//! APIs: a 5xx is retried with the same idempotency (Stripe's `Idempotency-Key`; Conekta's
//! lookup by our reference) and makes one intent and one `payments` row; a refusal fails the
//! task at once with the provider's reason and stores nothing.

use engine::TaskStatus;
use jobs::queues;
use serde_json::{json, Value};
use testkit::{Accepted, TestApp, DEMO};
use uuid::Uuid;
use wiremock::{
    matchers::{body_string_contains, method, path, query_param},
    Mock, MockServer, ResponseTemplate,
};

async fn payments_rows(app: &TestApp, id: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM payments WHERE id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

fn header_of(req: &wiremock::Request, name: &str) -> String {
    req.headers
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stripe_5xx_is_retried_with_the_same_key_and_a_refusal_fails_with_its_reason() {
    let stripe = MockServer::start().await;
    // A refusal (Stripe's shape for an amount below its minimum), whatever the attempt.
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .and(body_string_contains("amount=1&"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {
            "code": "amount_too_small", "param": "amount", "type": "invalid_request_error",
            "message": "Amount must be at least $10.00 mxn"}})))
        .with_priority(1)
        .mount(&stripe)
        .await;
    // The first create answers 500 (Stripe says it may be retried), the next succeeds.
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(
            ResponseTemplate::new(500)
                .insert_header("stripe-should-retry", "true")
                .set_body_json(json!({"error": {"type": "api_error",
                                                "message": "An unknown error occurred"}})),
        )
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&stripe)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "pi_3Retry", "object": "payment_intent", "amount": 50_000,
            "currency": "mxn", "status": "requires_payment_method",
            "client_secret": "pi_3Retry_secret_x"})))
        .with_priority(3)
        .mount(&stripe)
        .await;
    let url = stripe.uri();
    let app = TestApp::builder()
        .seed_demo()
        .core(move |c| {
            c.payments.stripe_secret_key = Some("sk_test_taquilla".into());
            c.payments.stripe_api_url = url;
        })
        .workers(&[queues::WEBHOOKS])
        .spawn()
        .await;

    let id = app
        .payment_intent(
            DEMO,
            json!({"amountCents": 50_000, "currency": "MXN", "provider": "stripe"}),
        )
        .await
        .task_id();
    let rec = app.wait_for(id, TaskStatus::Completed).await;
    assert_eq!(rec.attempts, 2, "one failed attempt, then the good one");
    let result = rec.result.unwrap();
    assert_eq!(result["providerRef"], "pi_3Retry", "{result}");
    let sent = stripe.received_requests().await.unwrap();
    assert_eq!(sent.len(), 2, "the 500, then the retry");
    let keys: Vec<String> = sent
        .iter()
        .map(|r| header_of(r, "idempotency-key"))
        .collect();
    assert_eq!(
        keys,
        vec![id.to_string(), id.to_string()],
        "the same key both times"
    );
    assert_eq!(payments_rows(&app, id).await, 1);

    let refused = app
        .payment_intent(
            DEMO,
            json!({"amountCents": 1, "currency": "MXN", "provider": "stripe"}),
        )
        .await
        .task_id();
    let rec = app.wait_for(refused, TaskStatus::Failed).await;
    assert_eq!(rec.attempts, 1, "a refusal is not retried");
    let error: Value = serde_json::to_value(&rec.error).unwrap();
    assert_eq!(error["code"], "amount_too_small", "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("at least"),
        "the provider's reason: {error}"
    );
    assert_eq!(payments_rows(&app, refused).await, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conekta_order_created_but_answered_500_is_found_by_reference_not_created_again() {
    let conekta = MockServer::start().await;
    let app = TestApp::builder()
        .seed_demo()
        .core({
            let url = conekta.uri();
            move |c| {
                c.payments.conekta_api_key = Some("key_taquilla".into());
                c.payments.conekta_api_url = url;
            }
        })
        .workers(&[queues::WEBHOOKS])
        .spawn()
        .await;
    // Nothing yet, on the first lookup.
    Mock::given(method("GET"))
        .and(path("/orders"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"object": "list", "has_more": false, "data": []})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&conekta)
        .await;
    // Conekta made the order but the answer was lost: a 500.
    Mock::given(method("POST"))
        .and(path("/orders"))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({
            "object": "error", "type": "api_error",
            "details": [{"message": "Internal error", "code": "conekta.errors.api.system"}]})))
        .expect(1)
        .mount(&conekta)
        .await;

    let id = app
        .payment_intent(
            DEMO,
            json!({"amountCents": 125_050, "currency": "MXN", "provider": "conekta"}),
        )
        .await
        .task_id();
    // The retry's lookup, searched by our reference, finds the order the 500 hid.
    Mock::given(method("GET"))
        .and(path("/orders"))
        .and(query_param("search", id.to_string()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "list", "has_more": false, "data": [
                {"id": "ord_Other", "object": "order", "amount": 9, "currency": "MXN",
                 "payment_status": "pending_payment", "metadata": {"taquilla_payment_id": "x"}},
                {"id": "ord_Lost", "object": "order", "amount": 125_050, "currency": "MXN",
                 "payment_status": "pending_payment",
                 "metadata": {"taquilla_payment_id": id.to_string()},
                 "charges": {"object": "list", "data": []}}]})))
        .with_priority(2)
        .mount(&conekta)
        .await;
    let rec = app.wait_for(id, TaskStatus::Completed).await;
    assert_eq!(rec.attempts, 2);
    let result = rec.result.unwrap();
    assert_eq!(
        result["providerRef"], "ord_Lost",
        "ours, not another order: {result}"
    );
    assert_eq!(payments_rows(&app, id).await, 1);
    let creates = conekta
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method.as_str() == "POST")
        .count();
    assert_eq!(creates, 1, "no second order");
    app.stop().await;
}
