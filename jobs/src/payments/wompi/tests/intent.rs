use std::time::Duration;

use serde_json::{json, Value};
use uuid::Uuid;
use wiremock::{
    matchers::{header, method, path},
    Mock, MockServer, ResponseTemplate,
};

use crate::payments::{
    config::PaymentsConfig, wompi::create_intent, CreatedIntent, IntentRequest, PaymentStatus,
    ProviderError,
};

const PRIVATE_KEY: &str = "prv_test_Hl3V675pH555OJ00046aKuYo";

fn config(api_url: &str) -> PaymentsConfig {
    PaymentsConfig {
        wompi_private_key: Some(PRIVATE_KEY.into()),
        wompi_api_url: format!("{api_url}/v1/"),
        provider_timeout: Duration::from_secs(5),
        ..PaymentsConfig::default()
    }
}

fn request() -> IntentRequest {
    IntentRequest {
        payment_id: Uuid::now_v7(),
        amount_cents: 4_490_000,
        currency: "cop".into(),
        description: Some("Boletos VIP & general".into()),
        metadata: json!({"ignored": true}),
    }
}

fn link_json(id: &str, req: &IntentRequest) -> Value {
    json!({"data": {
        "id": id,
        "name": "Boletos VIP & general",
        "description": "Boletos VIP & general",
        "single_use": true,
        "collect_shipping": false,
        "currency": "COP",
        "amount_in_cents": 4_490_000,
        "sku": req.payment_id.to_string(),
        "active": true,
    }})
}

#[tokio::test]
async fn wompi_link_is_created_with_wompis_request_shape() {
    let server = MockServer::start().await;
    let req = request();
    Mock::given(method("POST"))
        .and(path("/v1/payment_links"))
        .and(header("authorization", format!("Bearer {PRIVATE_KEY}")))
        .and(header("content-type", "application/json"))
        .respond_with(ResponseTemplate::new(201).set_body_json(link_json("test_AbC12", &req)))
        .expect(1)
        .mount(&server)
        .await;

    let created = create_intent(&reqwest::Client::new(), &config(&server.uri()), &req)
        .await
        .unwrap();

    assert_eq!(
        created,
        CreatedIntent {
            provider_ref: "test_AbC12".into(),
            status: PaymentStatus::Pending,
            client: json!({
                "checkoutUrl": "https://checkout.wompi.co/l/test_AbC12",
                "paymentLinkId": "test_AbC12",
            }),
            raw: link_json("test_AbC12", &req),
        }
    );
    let received = server.received_requests().await.unwrap();
    let sent: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(
        sent,
        json!({
            "name": "Boletos VIP & general",
            "description": "Boletos VIP & general",
            "single_use": true,
            "collect_shipping": false,
            "currency": "COP",
            "amount_in_cents": 4_490_000,
            "sku": req.payment_id.to_string(),
        })
    );
    // An integer, never a string or a float: Wompi asks for whole cents.
    assert!(sent["amount_in_cents"].is_i64());
}

#[tokio::test]
async fn wompi_link_without_description_gets_a_name() {
    let server = MockServer::start().await;
    let mut req = request();
    req.description = None;
    Mock::given(method("POST"))
        .and(path("/v1/payment_links"))
        .respond_with(ResponseTemplate::new(200).set_body_json(link_json("l1", &req)))
        .mount(&server)
        .await;
    create_intent(&reqwest::Client::new(), &config(&server.uri()), &req)
        .await
        .unwrap();
    let received = server.received_requests().await.unwrap();
    let sent: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(sent["name"], "Taquilla");
    assert_eq!(sent["description"], "Taquilla");
}

#[tokio::test]
async fn wompi_4xx_is_refused_with_wompis_messages() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_links"))
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({"error": {
            "type": "INPUT_VALIDATION_ERROR",
            "messages": {
                "amount_in_cents": ["Debe ser mayor o igual a 150000"],
                "currency": ["Moneda no soportada", "Use COP"],
            },
        }})))
        .expect(1)
        .mount(&server)
        .await;
    let err = create_intent(&reqwest::Client::new(), &config(&server.uri()), &request())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ProviderError::Refused {
            code: "INPUT_VALIDATION_ERROR".into(),
            message: "amount_in_cents: Debe ser mayor o igual a 150000; currency: Moneda no soportada, Use COP".into(),
        }
    );

    server.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": {
            "type": "INVALID_ACCESS_TOKEN",
            "reason": "Se esperaba una llave privada",
        }})))
        .mount(&server)
        .await;
    let err = create_intent(&reqwest::Client::new(), &config(&server.uri()), &request())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ProviderError::Refused {
            code: "INVALID_ACCESS_TOKEN".into(),
            message: "Se esperaba una llave privada".into(),
        }
    );

    // A 2xx without a link id cannot be retried into the same link.
    server.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": {}})))
        .mount(&server)
        .await;
    let err = create_intent(&reqwest::Client::new(), &config(&server.uri()), &request())
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Refused { code, .. } if code == "bad_response"));
}

#[tokio::test]
async fn wompi_5xx_429_and_network_errors_are_unavailable() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_string("<html>down</html>"))
        .mount(&server)
        .await;
    let err = create_intent(&reqwest::Client::new(), &config(&server.uri()), &request())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProviderError::Unavailable { code, retry_after: None, .. } if code == "http_503"),
        "{err:?}"
    );

    server.reset().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "7")
                .set_body_json(json!({"error": {"type": "RATE_LIMIT", "messages": "Slow down"}})),
        )
        .mount(&server)
        .await;
    let err = create_intent(&reqwest::Client::new(), &config(&server.uri()), &request())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ProviderError::Unavailable {
            code: "RATE_LIMIT".into(),
            message: "Slow down".into(),
            retry_after: Some(Duration::from_secs(7)),
        }
    );

    // Nobody listens: a network error.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let err = create_intent(
        &reqwest::Client::new(),
        &config(&format!("http://{closed}")),
        &request(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, ProviderError::Unavailable { code, .. } if code == "network"),
        "{err:?}"
    );
}

#[tokio::test]
async fn wompi_retry_after_a_500_succeeds_with_one_link() {
    let server = MockServer::start().await;
    let req = request();
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(link_json("l2", &req)))
        .expect(1)
        .mount(&server)
        .await;
    let http = reqwest::Client::new();
    let cfg = config(&server.uri());
    assert!(matches!(
        create_intent(&http, &cfg, &req).await,
        Err(ProviderError::Unavailable { .. })
    ));
    let created = create_intent(&http, &cfg, &req).await.unwrap();
    assert_eq!(created.provider_ref, "l2");
}
