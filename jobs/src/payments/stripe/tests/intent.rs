use std::time::Duration;

use serde_json::json;
use uuid::Uuid;
use wiremock::{
    matchers::{header, method, path},
    Mock, MockServer, Request, ResponseTemplate,
};

use crate::payments::{
    config::PaymentsConfig,
    stripe::{create_intent, minor_unit_exponent, minor_unit_step},
    CreatedIntent, IntentRequest, PaymentStatus, ProviderError,
};

const SECRET_KEY: &str = "sk_test_51abcDEF";

fn config(api_url: &str) -> PaymentsConfig {
    PaymentsConfig {
        stripe_secret_key: Some(SECRET_KEY.into()),
        stripe_api_url: api_url.into(),
        provider_timeout: Duration::from_secs(5),
        ..PaymentsConfig::default()
    }
}

fn request() -> IntentRequest {
    IntentRequest {
        payment_id: Uuid::now_v7(),
        amount_cents: 125_050,
        currency: "MXN".into(),
        description: Some("Boletos VIP & general".into()),
        metadata: json!({
            "event": "Concierto 20/12",
            "seats": 2,
            "vip": true,
            "paymentId": "not ours to set",
            "nested": {"ignored": 1},
            "list": [1, 2],
            "empty": null,
        }),
    }
}

fn intent_json(id: &str, status: &str) -> serde_json::Value {
    json!({
        "id": id,
        "object": "payment_intent",
        "amount": 125_050,
        "currency": "mxn",
        "status": status,
        "client_secret": format!("{id}_secret_abc"),
    })
}

/// `application/x-www-form-urlencoded` decoded by hand, so the check does not rely on the
/// encoder the code under test uses.
fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8(out).unwrap()
    };
    let mut pairs: Vec<_> = std::str::from_utf8(body)
        .unwrap()
        .split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap();
            (decode(k), decode(v))
        })
        .collect();
    pairs.sort();
    pairs
}

fn header_of<'a>(request: &'a Request, name: &str) -> &'a str {
    request.headers.get(name).unwrap().to_str().unwrap()
}

#[tokio::test]
async fn stripe_intent_is_created_with_stripes_exact_request_shape() {
    let server = MockServer::start().await;
    let req = request();
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .and(header("authorization", format!("Bearer {SECRET_KEY}")))
        .and(header("idempotency-key", req.payment_id.to_string()))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(intent_json("pi_123", "requires_payment_method")),
        )
        .expect(1)
        .mount(&server)
        .await;

    let created = create_intent(&reqwest::Client::new(), &config(&server.uri()), &req)
        .await
        .unwrap();

    assert_eq!(
        created,
        CreatedIntent {
            provider_ref: "pi_123".into(),
            status: PaymentStatus::Pending,
            client: json!({"clientSecret": "pi_123_secret_abc"}),
            raw: intent_json("pi_123", "requires_payment_method"),
        }
    );
    let received = server.received_requests().await.unwrap();
    let mut expected = vec![
        ("amount".to_string(), "125050".to_string()),
        ("currency".into(), "mxn".into()),
        ("description".into(), "Boletos VIP & general".into()),
        ("metadata[paymentId]".into(), req.payment_id.to_string()),
        ("metadata[event]".into(), "Concierto 20/12".into()),
        ("metadata[seats]".into(), "2".into()),
        ("metadata[vip]".into(), "true".into()),
    ];
    expected.sort();
    assert_eq!(form_pairs(&received[0].body), expected);
}

#[tokio::test]
async fn stripe_intent_statuses_map_to_ours() {
    let server = MockServer::start().await;
    let cases = [
        ("requires_payment_method", PaymentStatus::Pending),
        ("requires_confirmation", PaymentStatus::Pending),
        ("requires_action", PaymentStatus::Pending),
        ("processing", PaymentStatus::Processing),
        ("requires_capture", PaymentStatus::Processing),
        ("succeeded", PaymentStatus::Succeeded),
        ("canceled", PaymentStatus::Canceled),
    ];
    for (stripe_status, ours) in cases {
        server.reset().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(intent_json("pi_s", stripe_status)),
            )
            .mount(&server)
            .await;
        let created = create_intent(&reqwest::Client::new(), &config(&server.uri()), &request())
            .await
            .unwrap();
        assert_eq!(created.status, ours, "{stripe_status}");
    }
}

#[tokio::test]
async fn stripe_500_is_unavailable_and_the_retry_sends_the_same_idempotency_key() {
    let server = MockServer::start().await;
    let req = request();
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({
            "error": {"type": "api_error", "message": "An unknown error occurred"}
        })))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(intent_json("pi_once", "requires_payment_method")),
        )
        .mount(&server)
        .await;
    let http = reqwest::Client::new();
    let cfg = config(&server.uri());

    let first = create_intent(&http, &cfg, &req).await.unwrap_err();
    assert_eq!(
        first,
        ProviderError::Unavailable {
            code: "api_error".into(),
            message: "An unknown error occurred".into(),
            retry_after: None,
        }
    );
    let second = create_intent(&http, &cfg, &req).await.unwrap();
    assert_eq!(second.provider_ref, "pi_once");

    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 2);
    let key = req.payment_id.to_string();
    assert_eq!(header_of(&received[0], "idempotency-key"), key);
    assert_eq!(header_of(&received[1], "idempotency-key"), key);
    assert_eq!(received[0].body, received[1].body);
}

async fn answer(template: ResponseTemplate) -> ProviderError {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(template)
        .mount(&server)
        .await;
    create_intent(&reqwest::Client::new(), &config(&server.uri()), &request())
        .await
        .unwrap_err()
}

#[tokio::test]
async fn stripe_card_error_402_is_refused_with_stripes_reason() {
    let refused = answer(ResponseTemplate::new(402).set_body_json(json!({
        "error": {
            "type": "card_error",
            "code": "card_declined",
            "decline_code": "insufficient_funds",
            "message": "Your card has insufficient funds."
        }
    })))
    .await;
    assert_eq!(
        refused,
        ProviderError::Refused {
            code: "card_declined".into(),
            message: "Your card has insufficient funds.".into(),
        }
    );
}

#[tokio::test]
async fn stripe_invalid_request_400_is_refused() {
    let refused = answer(ResponseTemplate::new(400).set_body_json(json!({
        "error": {
            "type": "invalid_request_error",
            "code": "amount_too_small",
            "param": "amount",
            "message": "Amount must be at least $10.00 mxn"
        }
    })))
    .await;
    assert_eq!(
        refused,
        ProviderError::Refused {
            code: "amount_too_small".into(),
            message: "Amount must be at least $10.00 mxn".into(),
        }
    );
}

#[tokio::test]
async fn stripe_429_is_unavailable_with_its_retry_after() {
    let error = answer(
        ResponseTemplate::new(429)
            .insert_header("Retry-After", "7")
            .set_body_json(json!({
                "error": {"type": "invalid_request_error", "code": "rate_limit", "message": "Too many requests"}
            })),
    )
    .await;
    assert_eq!(
        error,
        ProviderError::Unavailable {
            code: "rate_limit".into(),
            message: "Too many requests".into(),
            retry_after: Some(Duration::from_secs(7)),
        }
    );
}

#[tokio::test]
async fn stripe_409_and_5xx_without_a_body_are_unavailable() {
    for status in [409, 502, 503] {
        let error = answer(ResponseTemplate::new(status)).await;
        assert!(
            matches!(&error, ProviderError::Unavailable { code, retry_after: None, .. } if *code == format!("http_{status}")),
            "{status}: {error:?}"
        );
    }
}

#[tokio::test]
async fn stripe_should_retry_header_overrides_the_status() {
    let retry = answer(
        ResponseTemplate::new(400)
            .insert_header("Stripe-Should-Retry", "true")
            .set_body_json(json!({
                "error": {"type": "invalid_request_error", "code": "lock_timeout", "message": "busy"}
            })),
    )
    .await;
    assert!(
        matches!(&retry, ProviderError::Unavailable { code, .. } if code == "lock_timeout"),
        "{retry:?}"
    );

    let refuse = answer(
        ResponseTemplate::new(503)
            .insert_header("Stripe-Should-Retry", "false")
            .set_body_json(json!({
                "error": {"type": "idempotency_error", "message": "Keys for idempotent requests can only be used with the same parameters"}
            })),
    )
    .await;
    assert_eq!(
        refuse,
        ProviderError::Refused {
            code: "idempotency_error".into(),
            message: "Keys for idempotent requests can only be used with the same parameters"
                .into(),
        }
    );
}

#[tokio::test]
async fn stripe_2xx_without_an_intent_id_is_unavailable() {
    let error = answer(ResponseTemplate::new(200).set_body_string("<html>proxy</html>")).await;
    assert!(
        matches!(&error, ProviderError::Unavailable { code, .. } if code == "bad_response"),
        "{error:?}"
    );
}

#[tokio::test]
async fn stripe_unreachable_is_unavailable() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let error = create_intent(
        &reqwest::Client::new(),
        &config(&format!("http://127.0.0.1:{port}")),
        &request(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&error, ProviderError::Unavailable { code, .. } if code == "network"),
        "{error:?}"
    );
}

#[test]
fn stripe_minor_units_follow_stripes_currency_list() {
    for zero in [
        "JPY", "jpy", "CLP", "KRW", "VND", "UGX", "XOF", "BIF", "PYG",
    ] {
        assert_eq!(minor_unit_exponent(zero), 0, "{zero}");
    }
    for three in ["BHD", "JOD", "KWD", "omr", "TND"] {
        assert_eq!(minor_unit_exponent(three), 3, "{three}");
    }
    for two in ["MXN", "usd", "COP", "EUR", "ISK", "HUF", "TWD"] {
        assert_eq!(minor_unit_exponent(two), 2, "{two}");
    }
    assert_eq!(minor_unit_step("KWD"), 10);
    assert_eq!(minor_unit_step("isk"), 100);
    assert_eq!(minor_unit_step("MXN"), 1);
    assert_eq!(minor_unit_step("JPY"), 1);
}

#[test]
fn stripe_retry_after_reads_seconds_and_http_dates() {
    use reqwest::header::{HeaderMap, HeaderValue};

    use crate::payments::retry_after;

    let now = chrono::DateTime::parse_from_rfc2822("Tue, 01 Dec 2026 04:00:00 GMT")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let with = |value: &'static str| {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static(value));
        retry_after(&headers, now)
    };
    assert_eq!(with("30"), Some(Duration::from_secs(30)));
    assert_eq!(
        with("Tue, 01 Dec 2026 04:01:30 GMT"),
        Some(Duration::from_secs(90))
    );
    // A date already past means "now", not a negative wait.
    assert_eq!(with("Tue, 01 Dec 2026 03:59:00 GMT"), Some(Duration::ZERO));
    assert_eq!(with("soon"), None);
    assert_eq!(retry_after(&HeaderMap::new(), now), None);
}
