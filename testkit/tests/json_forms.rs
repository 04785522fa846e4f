//! What a JSON body may say in more than one way, as JSON Schema (and so the OpenAPI
//! document) reads it: `null` for an optional field is "not given", and `100.0` is the
//! whole number 100. Both must be accepted, not answered with a 400.

use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use serde_json::Value;
use testkit::TestApp;

/// The api with the tokens this file uses, on its own schema and Redis prefix.
async fn app() -> TestApp {
    TestApp::builder().tokens("demo-token:demo").spawn().await
}

/// Sends `req` as the demo requester; the status and the JSON body (`null` if none).
async fn call(app: &TestApp, req: axum::http::request::Builder, body: Body) -> (StatusCode, Value) {
    let req = req
        .header("authorization", "Bearer demo-token")
        .body(body)
        .unwrap();
    let resp = app.request(req).await;
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn post(app: &TestApp, uri: &str, body: &str) -> (StatusCode, Value) {
    let req = Request::post(uri).header("content-type", "application/json");
    call(app, req, Body::from(body.to_string())).await
}

async fn get(app: &TestApp, uri: &str) -> (StatusCode, Value) {
    call(app, Request::get(uri), Body::empty()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_optional_fields_are_not_given() {
    let app = app().await;
    app.seed_demo().await;

    let (status, body) = post(
        &app,
        "/events/ev_demo/deliveries",
        r#"{"channel":"whatsapp","kind":null,"template":null,"all":null,"guestIds":["g1"]}"#,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    let (status, body) = post(
        &app,
        "/director/payments",
        r#"{"organizerId":"org_demo","amount":null,"amountCents":1500,"currency":null,"metadata":null}"#,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    let (status, body) = post(
        &app,
        "/director/payments",
        r#"{"organizerId":"org_demo","amount":1.5,"amountCents":null}"#,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    // Both amounts null: still "give one", and neither is called an unknown field.
    let (status, body) = post(
        &app,
        "/director/payments",
        r#"{"organizerId":"org_demo","amount":null,"amountCents":null}"#,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let fields = body["error"]["fields"].as_object().unwrap();
    assert!(fields.contains_key("amount"), "{body}");
    assert!(
        !fields.values().any(|v| v == "is not a known field"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_number_written_with_a_fraction_is_a_whole_number() {
    let app = app().await;
    app.seed_demo().await;
    let assign = |tickets: &str| {
        format!(
            r#"{{"organizerId":"org_demo","eventId":"ev_demo","type":"prepaid","tickets":{tickets},"price":3.5}}"#
        )
    };

    for tickets in ["100.0", "1e2", "1.000", "100"] {
        let (status, body) = post(&app, "/director/assign", &assign(tickets)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "tickets {tickets}: {body}");
    }
    for (tickets, problem) in [
        ("100.5", "must be a whole number"),
        ("0.0", "must be > 0"),
        ("1e7", "must be a whole number from 1 to 1000000"),
        ("1e300", "must be a whole number from 1 to 1000000"),
    ] {
        let (status, body) = post(&app, "/director/assign", &assign(tickets)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "tickets {tickets}: {body}");
        assert_eq!(
            body["error"]["fields"]["tickets"], problem,
            "tickets {tickets}"
        );
    }
}

/// A query value is read as written: empty is "not given" (what HTML forms send), and
/// anything else (white space included) must match the document's pattern, or 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_values_are_read_exactly_and_empty_is_not_given() {
    let app = app().await;
    app.seed_demo().await;

    for uri in [
        "/director/reports/overview?to=&from=&currency=&page=",
        "/director/reports/top-organizers?organizerId=&sort=&dir=",
    ] {
        let (status, body) = get(&app, uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    }
    for (uri, field) in [
        ("/director/reports/overview?to=%20", "to"),
        ("/director/reports/overview?to=%202025-01-01", "to"),
        ("/director/reports/overview?currency=%0D", "currency"),
        ("/director/reports/top-organizers?dir=asc%20", "dir"),
        ("/director/reports/top-organizers?page=%201", "page"),
    ] {
        let (status, body) = get(&app, uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert!(
            body["error"]["fields"][field].is_string(),
            "{uri}: {field} not named in {body}"
        );
    }
}
