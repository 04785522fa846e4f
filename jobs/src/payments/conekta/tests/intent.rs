use std::time::Duration;

use serde_json::{json, Value};
use uuid::Uuid;
use wiremock::{
    matchers::{header, method, path, query_param},
    Mock, MockServer, Request, ResponseTemplate,
};

use crate::payments::{
    conekta::{create_intent, current_order, ACCEPT},
    config::PaymentsConfig,
    IntentRequest, PaymentStatus, ProviderError,
};

const API_KEY: &str = "key_test_ConektaPrivada123";

fn config(api_url: &str) -> PaymentsConfig {
    PaymentsConfig {
        conekta_api_key: Some(API_KEY.into()),
        conekta_api_url: api_url.into(),
        provider_timeout: Duration::from_secs(5),
        ..PaymentsConfig::default()
    }
}

fn request() -> IntentRequest {
    IntentRequest {
        payment_id: Uuid::now_v7(),
        amount_cents: 125_050,
        currency: "mxn".into(),
        description: Some("Boletos VIP".into()),
        metadata: json!({
            "event": "Concierto 20/12",
            "seats": 2,
            "vip": true,
            "taquilla_payment_id": "not ours to set",
            "nested": {"ignored": 1},
            "list": [1, 2],
            "empty": null,
        }),
    }
}

fn order_json(id: &str, reference: &str, payment_status: &str) -> Value {
    json!({
        "id": id,
        "object": "order",
        "amount": 125_050,
        "currency": "MXN",
        "payment_status": payment_status,
        "metadata": {"taquilla_payment_id": reference},
        "charges": {"object": "list", "data": [{
            "id": "chg_1",
            "order_id": id,
            "amount": 125_050,
            "payment_method": {
                "type": "oxxo",
                "object": "cash_payment",
                "reference": "93000262276908",
                "barcode_url": "https://barcode.example/93000262276908.png",
                "service_name": "OxxoPay",
                "expires_at": 1_765_000_000,
            },
        }]},
    })
}

fn empty_list() -> Value {
    json!({"object": "list", "has_more": false, "data": []})
}

async fn mount_lookup(server: &MockServer, reference: &str, answer: Value) {
    Mock::given(method("GET"))
        .and(path("/orders"))
        .and(query_param("search", reference))
        .and(header("accept", ACCEPT))
        .and(header("authorization", format!("Bearer {API_KEY}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer))
        .mount(server)
        .await;
}

fn posts(requests: &[Request]) -> Vec<&Request> {
    requests
        .iter()
        .filter(|r| r.method.as_str() == "POST")
        .collect()
}

#[tokio::test]
async fn conekta_order_is_created_with_the_exact_request_shape() {
    let server = MockServer::start().await;
    let req = request();
    let reference = req.payment_id.to_string();
    mount_lookup(&server, &reference, empty_list()).await;
    Mock::given(method("POST"))
        .and(path("/orders"))
        .and(header("accept", ACCEPT))
        .and(header("authorization", format!("Bearer {API_KEY}")))
        .and(header("content-type", "application/json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(order_json(
            "ord_2tX",
            &reference,
            "pending_payment",
        )))
        .expect(1)
        .mount(&server)
        .await;

    let created = create_intent(&reqwest::Client::new(), &config(&server.uri()), &req)
        .await
        .unwrap();
    assert_eq!(created.provider_ref, "ord_2tX");
    assert_eq!(created.status, PaymentStatus::Pending);
    assert_eq!(
        created.client,
        json!({
            "orderId": "ord_2tX",
            "reference": "93000262276908",
            "barcodeUrl": "https://barcode.example/93000262276908.png",
            "serviceName": "OxxoPay",
            "expiresAt": 1_765_000_000,
            "amountCents": 125_050,
            "currency": "MXN",
        })
    );

    let requests = server.received_requests().await.unwrap();
    let post = posts(&requests);
    assert_eq!(post.len(), 1);
    let body: Value = serde_json::from_slice(&post[0].body).unwrap();
    assert_eq!(
        body,
        json!({
            "currency": "MXN",
            "customer_info": {
                "name": "Cliente Taquilla",
                "email": "cliente@example.com",
                "phone": "5500000000",
            },
            "line_items": [{"name": "Boletos VIP", "unit_price": 125_050, "quantity": 1}],
            "charges": [{"payment_method": {"type": "cash"}, "amount": 125_050}],
            "metadata": {
                "taquilla_payment_id": reference,
                "event": "Concierto 20/12",
                "seats": 2,
                "vip": true,
            },
        })
    );
    // Integer cents, never a decimal string or float.
    assert!(body["line_items"][0]["unit_price"].is_i64());
    // The lookup came first.
    assert_eq!(requests[0].method.as_str(), "GET");
    assert_eq!(
        requests[0]
            .url
            .query_pairs()
            .find(|(k, _)| k == "limit")
            .unwrap()
            .1,
        "250"
    );
}

#[tokio::test]
async fn conekta_default_line_item_name_is_pago() {
    let server = MockServer::start().await;
    let mut req = request();
    req.description = None;
    let reference = req.payment_id.to_string();
    mount_lookup(&server, &reference, empty_list()).await;
    Mock::given(method("POST"))
        .and(path("/orders"))
        .respond_with(ResponseTemplate::new(200).set_body_json(order_json(
            "ord_1",
            &reference,
            "pending_payment",
        )))
        .mount(&server)
        .await;
    create_intent(&reqwest::Client::new(), &config(&server.uri()), &req)
        .await
        .unwrap();
    let requests = server.received_requests().await.unwrap();
    let body: Value = serde_json::from_slice(&posts(&requests)[0].body).unwrap();
    assert_eq!(body["line_items"][0]["name"], "Pago");
}

#[tokio::test]
async fn conekta_retry_finds_the_existing_order_and_creates_none() {
    let server = MockServer::start().await;
    let req = request();
    let reference = req.payment_id.to_string();
    // The search is loose: another order (someone else's reference) comes back too, and only
    // the exact metadata match counts.
    mount_lookup(
        &server,
        &reference,
        json!({"object": "list", "has_more": false, "data": [
            order_json("ord_other", "0190-someone-else", "paid"),
            order_json("ord_ours", &reference, "paid"),
        ]}),
    )
    .await;
    Mock::given(method("POST"))
        .and(path("/orders"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .expect(0)
        .mount(&server)
        .await;
    let created = create_intent(&reqwest::Client::new(), &config(&server.uri()), &req)
        .await
        .unwrap();
    assert_eq!(created.provider_ref, "ord_ours");
    assert_eq!(created.status, PaymentStatus::Succeeded);
}

#[tokio::test]
async fn conekta_500_on_create_then_retry_makes_one_order() {
    let server = MockServer::start().await;
    let req = request();
    let reference = req.payment_id.to_string();
    // First lookup: nothing. The create answers 500 (but Conekta did store the order).
    Mock::given(method("GET"))
        .and(path("/orders"))
        .respond_with(ResponseTemplate::new(200).set_body_json(empty_list()))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/orders"))
        .respond_with(
            ResponseTemplate::new(500)
                .insert_header("retry-after", "7")
                .set_body_json(json!({"object": "error", "type": "api_error",
                    "details": [{"code": "conekta.errors.api.system", "message": "Error interno"}]})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let cfg = config(&server.uri());
    let http = reqwest::Client::new();
    let first = create_intent(&http, &cfg, &req).await.unwrap_err();
    assert_eq!(
        first,
        ProviderError::Unavailable {
            code: "conekta.errors.api.system".into(),
            message: "Error interno".into(),
            retry_after: Some(Duration::from_secs(7)),
        }
    );
    // The retry's lookup finds the order the failed call created: no second POST.
    mount_lookup(
        &server,
        &reference,
        json!({"data": [order_json("ord_stored", &reference, "pending_payment")]}),
    )
    .await;
    let second = create_intent(&http, &cfg, &req).await.unwrap();
    assert_eq!(second.provider_ref, "ord_stored");
}

#[tokio::test]
async fn conekta_4xx_is_refused_with_conektas_message() {
    let server = MockServer::start().await;
    let req = request();
    mount_lookup(&server, &req.payment_id.to_string(), empty_list()).await;
    Mock::given(method("POST"))
        .and(path("/orders"))
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({
            "object": "error",
            "type": "parameter_validation_error",
            "log_id": "641b",
            "details": [{
                "debug_message": "The param 'currency' is invalid.",
                "message": "La moneda no es válida.",
                "param": "currency",
                "code": "conekta.errors.parameter_validation.order.currency",
            }],
        })))
        .mount(&server)
        .await;
    let err = create_intent(&reqwest::Client::new(), &config(&server.uri()), &req)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ProviderError::Refused {
            code: "conekta.errors.parameter_validation.order.currency".into(),
            message: "La moneda no es válida.".into(),
        }
    );
}

#[tokio::test]
async fn conekta_failed_lookup_never_creates_blindly() {
    let server = MockServer::start().await;
    let req = request();
    Mock::given(method("GET"))
        .and(path("/orders"))
        .respond_with(ResponseTemplate::new(429))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/orders"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .expect(0)
        .mount(&server)
        .await;
    let err = create_intent(&reqwest::Client::new(), &config(&server.uri()), &req)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProviderError::Unavailable { code, .. } if code == "http_429"),
        "{err:?}"
    );
}

#[tokio::test]
async fn conekta_network_error_is_unavailable() {
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let err = create_intent(&reqwest::Client::new(), &config(&url), &request())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProviderError::Unavailable { code, .. } if code == "network"),
        "{err:?}"
    );
}

#[tokio::test]
async fn conekta_current_order_rereads_the_order() {
    let server = MockServer::start().await;
    for (id, payment_status, expected) in [
        ("ord_a", "paid", PaymentStatus::Succeeded),
        ("ord_b", "pending_payment", PaymentStatus::Pending),
        ("ord_c", "declined", PaymentStatus::Failed),
        ("ord_d", "expired", PaymentStatus::Canceled),
        ("ord_e", "canceled", PaymentStatus::Canceled),
        ("ord_f", "refunded", PaymentStatus::Refunded),
    ] {
        Mock::given(method("GET"))
            .and(path(format!("/orders/{id}")))
            .and(header("accept", ACCEPT))
            .and(header("authorization", format!("Bearer {API_KEY}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(order_json(
                id,
                "r",
                payment_status,
            )))
            .mount(&server)
            .await;
        let (status, amount, raw) =
            current_order(&reqwest::Client::new(), &config(&server.uri()), id)
                .await
                .unwrap();
        assert_eq!(status, expected, "{payment_status}");
        assert_eq!(amount, 125_050);
        assert_eq!(raw["id"], id);
    }
    let missing = current_order(&reqwest::Client::new(), &config(&server.uri()), "ord_zzz")
        .await
        .unwrap_err();
    assert!(
        matches!(missing, ProviderError::Refused { .. }),
        "{missing:?}"
    );
    let traversal = current_order(&reqwest::Client::new(), &config(&server.uri()), "../x")
        .await
        .unwrap_err();
    assert!(matches!(traversal, ProviderError::Refused { .. }));
}
