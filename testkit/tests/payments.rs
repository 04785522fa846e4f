//! Payments in mock mode, end to end: an intent, then provider events signed with an HMAC
//! computed by an independent implementation (Python's `hmac`), applied once and forward
//! only, with the organizer's ledger entry written exactly once.

use std::process::{Command, Stdio};

use axum::http::StatusCode;
use engine::TaskStatus;
use jobs::queues;
use serde_json::{json, Value};
use testkit::{Accepted, TestApp, ADMIN, DEMO, OTHER};
use uuid::Uuid;

/// What a Python `script` prints for `stdin`, with `arg` as `sys.argv[1]`: the tests'
/// independent implementation of each provider's signature.
fn python(script: &str, arg: &str, stdin: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("python3")
        .args(["-c", script, arg])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python3 failed");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Hex HMAC-SHA256 of `body` under `secret`, by Python (not the code under test).
fn python_hmac(secret: &str, body: &str) -> String {
    python(
        "import hmac, hashlib, sys; \
         print(hmac.new(sys.argv[1].encode(), sys.stdin.buffer.read(), hashlib.sha256).hexdigest())",
        secret,
        body,
    )
}

fn event(id: &str, provider_ref: &str, status: &str, amount_cents: i64) -> String {
    json!({ "id": id, "type": format!("payment.{status}"),
            "data": { "providerRef": provider_ref, "status": status, "amountCents": amount_cents } })
    .to_string()
}

async fn created_payment(app: &TestApp, body: Value) -> Value {
    let id = app.payment_intent(DEMO, body).await.task_id();
    let rec = app.wait_for(id, TaskStatus::Completed).await;
    rec.result.unwrap()
}

async fn ledger_payments(app: &TestApp, payment: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM director_ledger_entries WHERE entry_type = 'payment' \
         AND metadata->>'paymentId' = $1",
    )
    .bind(payment)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_intent_then_its_signed_events_are_applied_once_and_forward_only() {
    let app = TestApp::builder()
        .seed_demo()
        .workers(&[queues::WEBHOOKS, queues::MAINTENANCE])
        .spawn()
        .await;
    let secret = app.config.payments.mock_webhook_secret.clone().unwrap();

    // The seed's smoke call: mock mode, no credentials anywhere.
    let smoke = created_payment(&app, json!({"amount": 1000, "currency": "mxn"})).await;
    assert_eq!(smoke["provider"], "mock", "{smoke}");
    assert_eq!(smoke["amountCents"], 100_000);
    assert_eq!(smoke["currency"], "MXN");
    assert!(smoke["client"]["checkoutUrl"]
        .as_str()
        .unwrap()
        .starts_with("mock://checkout/"));

    let result = created_payment(
        &app,
        json!({"amountCents": 150_000, "currency": "MXN", "organizerId": "org_demo",
               "description": "pago de boletos"}),
    )
    .await;
    let payment_id: Uuid = result["paymentId"].as_str().unwrap().parse().unwrap();
    let provider_ref = result["providerRef"].as_str().unwrap().to_string();
    let (status, view) = app.get_payment(payment_id, DEMO).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["status"], "pending");
    assert_eq!(view["organizerId"], "org_demo");
    let (status, _) = app.get_payment(payment_id, OTHER).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another requester's payment is not found"
    );

    // A bad signature, a missing one, a wrong secret: 401 and nothing stored.
    let succeeded = event("evt_1", &provider_ref, "succeeded", 150_000);
    for headers in [
        vec![("x-mock-signature", "00".repeat(32))],
        vec![("x-mock-signature", python_hmac("wrong-secret", &succeeded))],
        vec![],
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, body) = app
            .post_raw("/payments/webhook/mock", &headers, &succeeded)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    let tampered_sig = python_hmac(&secret, &succeeded);
    let tampered = succeeded.replace("150000", "150001");
    let (status, _) = app
        .post_raw(
            "/payments/webhook/mock",
            &[("x-mock-signature", &tampered_sig)],
            &tampered,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM payment_events")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, 0, "nothing stored before the signature holds");

    // The same event five times at once (both routes): stored once, one task, applied once.
    let signature = python_hmac(&secret, &succeeded);
    let deliveries = (0..5).map(|i| {
        let path = if i % 2 == 0 {
            "/payments/webhook/mock"
        } else {
            "/payments/webhook"
        };
        let (app, succeeded, signature) = (&app, succeeded.clone(), signature.clone());
        async move {
            app.post_raw(path, &[("x-mock-signature", &signature)], &succeeded)
                .await
        }
    });
    let replies = futures::future::join_all(deliveries).await;
    let mut tasks = std::collections::BTreeSet::new();
    for (status, body) in &replies {
        assert_eq!(*status, StatusCode::OK, "{body}");
        tasks.insert(body["taskId"].as_str().unwrap().to_string());
    }
    assert_eq!(tasks.len(), 1, "one task for one event: {replies:?}");
    assert_eq!(
        replies
            .iter()
            .filter(|(_, b)| b["duplicate"] == false)
            .count(),
        1
    );
    let task: Uuid = tasks.into_iter().next().unwrap().parse().unwrap();
    let applied = app.wait_for(task, TaskStatus::Completed).await;
    assert_eq!(applied.result.as_ref().unwrap()["moved"], true);
    assert_eq!(ledger_payments(&app, &payment_id.to_string()).await, 1);

    // A late `processing` (another event) does not move it back.
    let late = event("evt_0", &provider_ref, "processing", 150_000);
    let (status, body) = app
        .post_raw(
            "/payments/webhook/mock",
            &[("x-mock-signature", &python_hmac(&secret, &late))],
            &late,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let task: Uuid = body["taskId"].as_str().unwrap().parse().unwrap();
    let rec = app.wait_for(task, TaskStatus::Completed).await;
    assert_eq!(rec.result.as_ref().unwrap()["moved"], false);

    let (_, view) = app.get_payment(payment_id, DEMO).await;
    assert_eq!(view["status"], "succeeded", "{view}");
    assert!(view["ledgerEntryId"].is_string(), "{view}");
    let history = view["history"].as_array().unwrap();
    assert_eq!(history.len(), 2, "{view}");
    assert_eq!(
        ledger_payments(&app, &payment_id.to_string()).await,
        1,
        "the ledger entry once"
    );
    let (status, _) = app.get_payment(payment_id, ADMIN).await;
    assert_eq!(status, StatusCode::OK, "an admin sees every payment");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_intents_name_the_field() {
    let app = TestApp::spawn().await;
    for (body, field) in [
        (json!({"currency": "MXN"}), "amount"),
        (json!({"amount": 10, "amountCents": 1000}), "amount"),
        (json!({"amount": 10.001}), "amount"),
        (json!({"amount": 0}), "amount"),
        (json!({"amountCents": 0}), "amountCents"),
        (json!({"amount": 1000, "currency": "JPY"}), "amount"),
        (json!({"amountCents": 1000, "currency": "mx"}), "currency"),
        (
            json!({"amountCents": 1000, "provider": "paypal"}),
            "provider",
        ),
        (json!({"amount": 10, "currency": "KWD"}), "amount"),
        (
            json!({"amountCents": 1005, "currency": "KWD"}),
            "amountCents",
        ),
        (
            json!({"amountCents": 1000, "organizerId": "bad id"}),
            "organizerId",
        ),
        (
            json!({"amountCents": 1000, "description": ""}),
            "description",
        ),
        (json!({"amountCents": 1000, "metadata": [1]}), "metadata"),
        (json!({"amountCents": 1000, "extra": 1}), "extra"),
    ] {
        let (status, resp) = app.payment_intent(DEMO, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {resp}");
        assert!(resp["error"]["fields"][field].is_string(), "{body}: {resp}");
    }
    // A zero-decimal currency takes whole units in amountCents.
    let (status, resp) = app
        .payment_intent(DEMO, json!({"amountCents": 1000, "currency": "JPY"}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{resp}");
    let (status, resp) = app.post_raw("/payments/webhook/paypal", &[], "{}").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{resp}");
    let (status, resp) = app.post_raw("/payments/webhook", &[], "{}").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{resp}");
}

/// `Stripe-Signature` for `body` at unix time `t`, by Python (not the code under test).
fn python_stripe_signature(secret: &str, t: i64, body: &str) -> String {
    format!("t={t},v1={}", python_hmac(secret, &format!("{t}.{body}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stripe_intent_and_its_signed_webhook_through_the_routes() {
    use wiremock::{
        matchers::{header, method, path},
        Mock, MockServer, ResponseTemplate,
    };
    let stripe = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .and(header("authorization", "Bearer sk_test_taquilla"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "pi_3Taquilla", "object": "payment_intent", "amount": 150000,
            "currency": "mxn", "status": "requires_payment_method",
            "client_secret": "pi_3Taquilla_secret_abc"
        })))
        .expect(1)
        .mount(&stripe)
        .await;
    let url = stripe.uri();
    let app = TestApp::builder()
        .seed_demo()
        .core(move |c| {
            c.payments.stripe_secret_key = Some("sk_test_taquilla".into());
            c.payments.stripe_webhook_secret = Some("whsec_taquilla".into());
            c.payments.stripe_api_url = url;
        })
        .workers(&[queues::WEBHOOKS, queues::MAINTENANCE])
        .spawn()
        .await;

    let result = created_payment(
        &app,
        json!({"amountCents": 150_000, "currency": "MXN", "provider": "stripe",
               "organizerId": "org_demo"}),
    )
    .await;
    assert_eq!(result["providerRef"], "pi_3Taquilla", "{result}");
    assert_eq!(result["client"]["clientSecret"], "pi_3Taquilla_secret_abc");
    let payment_id = result["paymentId"].as_str().unwrap().to_string();
    let sent = &stripe.received_requests().await.unwrap()[0];
    assert_eq!(
        sent.headers
            .get("idempotency-key")
            .unwrap()
            .to_str()
            .unwrap(),
        payment_id,
        "our payment id is Stripe's Idempotency-Key"
    );

    let body = json!({"id": "evt_1Taquilla", "object": "event", "type": "payment_intent.succeeded",
        "data": {"object": {"id": "pi_3Taquilla", "object": "payment_intent", "amount": 150000,
                            "currency": "mxn", "status": "succeeded"}}})
    .to_string();
    let now = chrono::Utc::now().timestamp();
    let stale = python_stripe_signature("whsec_taquilla", now - 3600, &body);
    let (status, reply) = app
        .post_raw(
            "/payments/webhook/stripe",
            &[("stripe-signature", &stale)],
            &body,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a stale signature: {reply}"
    );
    let good = python_stripe_signature("whsec_taquilla", now, &body);
    let (status, reply) = app
        .post_raw("/payments/webhook", &[("stripe-signature", &good)], &body)
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["provider"], "stripe");
    let task: Uuid = reply["taskId"].as_str().unwrap().parse().unwrap();
    app.wait_for(task, TaskStatus::Completed).await;
    let (_, view) = app.get_payment(payment_id.parse().unwrap(), DEMO).await;
    assert_eq!(view["status"], "succeeded", "{view}");
    assert_eq!(ledger_payments(&app, &payment_id).await, 1);
    app.stop().await;
}

/// Wompi's events checksum of `event`, by Python's hashlib (not the code under test).
fn python_wompi_checksum(secret: &str, event: &Value) -> String {
    let script = "import hashlib, json, sys\n\
                  ev = json.loads(sys.stdin.read())\n\
                  s = ''\n\
                  for p in ev['signature']['properties']:\n\
                  \x20   v = ev['data']\n\
                  \x20   for k in p.split('.'):\n\
                  \x20       v = v[k]\n\
                  \x20   s += str(v)\n\
                  s += str(ev['timestamp']) + sys.argv[1]\n\
                  print(hashlib.sha256(s.encode()).hexdigest())";
    python(script, secret, &event.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wompi_and_conekta_through_the_routes() {
    use wiremock::{
        matchers::{method, path, path_regex},
        Mock, MockServer, ResponseTemplate,
    };
    let wompi = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_links"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"data": {
            "id": "link_Taq1", "single_use": true, "currency": "COP",
            "amount_in_cents": 4_490_000, "active": true }})))
        .mount(&wompi)
        .await;
    let conekta = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/orders"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"object": "list", "has_more": false, "data": []})),
        )
        .mount(&conekta)
        .await;
    Mock::given(method("POST"))
        .and(path("/orders"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "ord_Taq1", "object": "order", "amount": 125_050, "currency": "MXN",
            "payment_status": "pending_payment", "metadata": {},
            "charges": {"object": "list", "data": []}})))
        .mount(&conekta)
        .await;
    // The re-read: Conekta's API says the order is paid, whatever the event claims.
    Mock::given(method("GET"))
        .and(path_regex("^/orders/ord_Taq1$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "ord_Taq1", "object": "order", "amount": 125_050, "currency": "MXN",
            "payment_status": "paid"})))
        .mount(&conekta)
        .await;
    let (wompi_url, conekta_url) = (format!("{}/v1/", wompi.uri()), conekta.uri());
    let app = TestApp::builder()
        .seed_demo()
        .core(move |c| {
            c.payments.wompi_private_key = Some("prv_test_taquilla".into());
            c.payments.wompi_events_secret = Some("test_events_taquilla".into());
            c.payments.wompi_api_url = wompi_url;
            c.payments.conekta_api_key = Some("key_taquilla".into());
            c.payments.conekta_api_url = conekta_url;
        })
        .workers(&[queues::WEBHOOKS, queues::MAINTENANCE])
        .spawn()
        .await;

    // Wompi: a link, then an APPROVED transaction event signed with the events checksum.
    let link = created_payment(
        &app,
        json!({"amountCents": 4_490_000, "currency": "COP", "provider": "wompi"}),
    )
    .await;
    assert_eq!(link["providerRef"], "link_Taq1", "{link}");
    let wompi_payment: Uuid = link["paymentId"].as_str().unwrap().parse().unwrap();
    let now = chrono::Utc::now().timestamp();
    let mut event = json!({
        "event": "transaction.updated",
        "data": {"transaction": {"id": "1234-1610641025-49201", "status": "APPROVED",
            "amount_in_cents": 4_490_000, "reference": "link_Taq1_1610641025_xyz",
            "payment_link_id": "link_Taq1"}},
        "environment": "test",
        "signature": {"properties": ["transaction.status", "transaction.id", "transaction.amount_in_cents"],
                      "checksum": ""},
        "timestamp": now, "sent_at": "2026-12-01T00:00:00.000Z"});
    let sum = python_wompi_checksum("test_events_taquilla", &event);
    event["signature"]["checksum"] = json!(sum);
    let body = event.to_string();
    let (status, reply) = app
        .post_raw("/payments/webhook", &[("x-event-checksum", &sum)], &body)
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let task: Uuid = reply["taskId"].as_str().unwrap().parse().unwrap();
    app.wait_for(task, TaskStatus::Completed).await;
    let (_, view) = app.get_payment(wompi_payment, DEMO).await;
    assert_eq!(view["status"], "succeeded", "{view}");
    let tampered = body.replace("APPROVED", "DECLINED");
    let (status, _) = app
        .post_raw(
            "/payments/webhook/wompi",
            &[("x-event-checksum", &sum)],
            &tampered,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Conekta: an order; an unsigned event (no public key configured, development) counts only
    // after the order is re-read from the API.
    let order = created_payment(
        &app,
        json!({"amountCents": 125_050, "currency": "MXN", "provider": "conekta"}),
    )
    .await;
    assert_eq!(order["providerRef"], "ord_Taq1", "{order}");
    let conekta_payment: Uuid = order["paymentId"].as_str().unwrap().parse().unwrap();
    let event = json!({"id": "evt_conekta_1", "type": "order.pending_payment",
        "data": {"object": {"id": "ord_Taq1", "object": "order", "amount": 125_050,
                            "payment_status": "pending_payment"}}})
    .to_string();
    let (status, reply) = app.post_raw("/payments/webhook/conekta", &[], &event).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let task: Uuid = reply["taskId"].as_str().unwrap().parse().unwrap();
    app.wait_for(task, TaskStatus::Completed).await;
    let (_, view) = app.get_payment(conekta_payment, DEMO).await;
    assert_eq!(
        view["status"], "succeeded",
        "the re-read order decides: {view}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_while_applying_an_event_applies_it_once_after_recovery() {
    let app = TestApp::builder().seed_demo().spawn().await;
    let secret = app.config.payments.mock_webhook_secret.clone().unwrap();
    let payment = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO payments (id, requester, provider, provider_ref, organizer_id, amount_cents, \
             currency, status) VALUES ($1, 'demo', 'mock', 'mock_killed', 'org_demo', 90000, 'MXN', 'pending')",
    )
    .bind(payment)
    .execute(&app.pool)
    .await
    .unwrap();
    // Hold the payment row so the first attempt blocks inside its transaction.
    let mut blocker = app.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM payments WHERE id = $1 FOR UPDATE")
        .bind(payment)
        .execute(&mut *blocker)
        .await
        .unwrap();

    let mut first = testkit::spawn_worker_process(&app, "webhooks", 2);
    let event = event("evt_killed", "mock_killed", "succeeded", 90_000);
    let (status, reply) = app
        .post_raw(
            "/payments/webhook/mock",
            &[("x-mock-signature", &python_hmac(&secret, &event))],
            &event,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let task: Uuid = reply["taskId"].as_str().unwrap().parse().unwrap();
    testkit::fixtures::wait_until_blocked_in(
        &app.pool,
        "FROM payments",
        "the attempt never reached the payment row",
    )
    .await;
    first.start_kill().unwrap(); // SIGKILL, mid-transaction
    first.wait().await.unwrap();
    blocker.rollback().await.unwrap();

    let mut second = testkit::spawn_worker_process(&app, "webhooks", 2);
    let rec = app
        .wait_finished(task, std::time::Duration::from_secs(30))
        .await;
    second.start_kill().unwrap();
    assert_eq!(rec.status, TaskStatus::Completed, "{:?}", rec.error);
    assert_eq!(
        rec.attempts, 2,
        "the lost attempt counts, the second one applies"
    );
    assert_eq!(ledger_payments(&app, &payment.to_string()).await, 1);
    let (_, view) = app.get_payment(payment, DEMO).await;
    assert_eq!(view["status"], "succeeded", "{view}");
}

/// Posts a mock event signed by Python's hmac and waits for its `payment_webhook` task.
async fn applied(app: &TestApp, secret: &str, body: &str) -> Value {
    let (status, reply) = app
        .post_raw(
            "/payments/webhook/mock",
            &[("x-mock-signature", &python_hmac(secret, body))],
            body,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let task: Uuid = reply["taskId"].as_str().unwrap().parse().unwrap();
    app.wait_for(task, TaskStatus::Completed)
        .await
        .result
        .unwrap()
}

/// What org_demo owes in MXN: its roll-up and the FIFO remainders of its assignments.
async fn owed(app: &TestApp) -> (i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT assigned_cents - paid_cents FROM director_kpi_org_total \
                 WHERE organizer_id = 'org_demo' AND currency = 'MXN'), \
                (SELECT COALESCE(sum(unpaid_cents), 0)::bigint FROM director_debt_day \
                 WHERE currency = 'MXN')",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refund_reverses_the_ledger_payment_once_and_the_debt_comes_back() {
    let app = TestApp::builder()
        .seed_demo()
        .workers(&[queues::WEBHOOKS, queues::ASSIGNMENTS, queues::MAINTENANCE])
        .spawn()
        .await;
    let secret = app.config.payments.mock_webhook_secret.clone().unwrap();
    for _ in 0..2 {
        let id = app
            .assign(
                json!({"organizerId": "org_demo", "eventId": "ev_demo", "type": "loan",
                           "tickets": 1, "price": 100}),
            )
            .await
            .task_id();
        app.wait_for(id, TaskStatus::Completed).await;
    }
    assert_eq!(owed(&app).await, (20_000, 20_000));
    let result = created_payment(
        &app,
        json!({"amountCents": 15_000, "currency": "MXN", "organizerId": "org_demo"}),
    )
    .await;
    let payment_id = result["paymentId"].as_str().unwrap().to_string();
    let provider_ref = result["providerRef"].as_str().unwrap().to_string();

    applied(
        &app,
        &secret,
        &event("evt_paid", &provider_ref, "succeeded", 15_000),
    )
    .await;
    assert_eq!(
        owed(&app).await,
        (5_000, 5_000),
        "the payment settles the oldest first"
    );
    // The refund, delivered twice under two event ids (a refund and its charge's event).
    let first = applied(
        &app,
        &secret,
        &event("evt_refund_1", &provider_ref, "refunded", 15_000),
    )
    .await;
    let second = applied(
        &app,
        &secret,
        &event("evt_refund_2", &provider_ref, "refunded", 15_000),
    )
    .await;
    assert_eq!(
        (
            first["ledgerEntryWritten"].as_bool(),
            second["ledgerEntryWritten"].as_bool()
        ),
        (Some(true), Some(false)),
        "{first} {second}"
    );
    assert_eq!(owed(&app).await, (20_000, 20_000), "owed again in full");
    let amounts: Vec<i64> = sqlx::query_scalar(
        "SELECT amount_cents FROM director_ledger_entries WHERE entry_type = 'payment' \
         AND metadata->>'paymentId' = $1 ORDER BY created_at",
    )
    .bind(&payment_id)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(amounts, vec![15_000, -15_000]);
    let (_, view) = app.get_payment(payment_id.parse().unwrap(), DEMO).await;
    assert_eq!(view["status"], "refunded", "{view}");
    assert!(view["refundEntryId"].is_string(), "{view}");
    let drift = testkit::fixtures::rollup_drift(&app.pool).await;
    assert!(
        drift.iter().all(|(_, n)| *n == 0),
        "the roll-ups equal a recomputation: {drift:?}"
    );
    app.stop().await;
}
