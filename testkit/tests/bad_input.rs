//! Every bad request gets a 4xx naming what is wrong, never a 5xx, and never reaches a queue.

use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use serde_json::Value;
use testkit::TestApp;

/// The api with the tokens this file uses, on its own schema and Redis prefix.
async fn app() -> TestApp {
    TestApp::builder()
        .tokens("demo-token:demo,other-token:other")
        .spawn()
        .await
}

const VALID: &str =
    r#"{"organizerId":"org_demo","eventId":"ev_demo","type":"prepaid","tickets":100,"price":3.5}"#;

/// `VALID` with one field replaced (or removed, with `None`).
fn with(field: &str, value: Option<&str>) -> String {
    let mut v: serde_json::Map<String, Value> = serde_json::from_str(VALID).unwrap();
    match value {
        Some(raw) => {
            v.insert(field.into(), serde_json::from_str(raw).unwrap());
        }
        None => {
            v.remove(field);
        }
    }
    Value::Object(v).to_string()
}

struct Case {
    name: &'static str,
    content_type: Option<&'static str>,
    token: Option<&'static str>,
    body: String,
    status: StatusCode,
    /// Fields the error must name.
    fields: &'static [&'static str],
}

fn case(
    name: &'static str,
    body: String,
    status: StatusCode,
    fields: &'static [&'static str],
) -> Case {
    Case {
        name,
        content_type: Some("application/json"),
        token: Some("demo-token"),
        body,
        status,
        fields,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_assign_requests_are_refused_with_the_field_named() {
    let app = app().await;
    let bad = StatusCode::BAD_REQUEST;
    let mut cases = vec![
        case(
            "missing organizerId",
            with("organizerId", None),
            bad,
            &["organizerId"],
        ),
        case("missing price", with("price", None), bad, &["price"]),
        case(
            "empty object",
            "{}".into(),
            bad,
            &["organizerId", "eventId", "type", "tickets", "price"],
        ),
        case(
            "extra field",
            with("discount", Some("5")),
            bad,
            &["discount"],
        ),
        case(
            "null tickets",
            with("tickets", Some("null")),
            bad,
            &["tickets"],
        ),
        case(
            "tickets as string",
            with("tickets", Some(r#""100""#)),
            bad,
            &["tickets"],
        ),
        case(
            "tickets zero",
            with("tickets", Some("0")),
            bad,
            &["tickets"],
        ),
        case(
            "tickets negative",
            with("tickets", Some("-5")),
            bad,
            &["tickets"],
        ),
        case(
            "tickets fractional",
            with("tickets", Some("1.5")),
            bad,
            &["tickets"],
        ),
        case(
            "tickets huge",
            with("tickets", Some("1000000000000")),
            bad,
            &["tickets"],
        ),
        case(
            "tickets beyond u64",
            with("tickets", Some("99999999999999999999999")),
            bad,
            &["tickets"],
        ),
        case(
            "tickets as bool",
            with("tickets", Some("true")),
            bad,
            &["tickets"],
        ),
        case(
            "price 3 decimals",
            with("price", Some("3.555")),
            bad,
            &["price"],
        ),
        case(
            "price as string",
            with("price", Some(r#""3.5""#)),
            bad,
            &["price"],
        ),
        case("price negative", with("price", Some("-1")), bad, &["price"]),
        case("price huge", with("price", Some("1e15")), bad, &["price"]),
        case(
            "price object",
            with("price", Some(r#"{"amount":1}"#)),
            bad,
            &["price"],
        ),
        case(
            "unknown type",
            with("type", Some(r#""gift""#)),
            bad,
            &["type"],
        ),
        case("type as number", with("type", Some("1")), bad, &["type"]),
        case(
            "empty organizerId",
            with("organizerId", Some(r#""""#)),
            bad,
            &["organizerId"],
        ),
        case(
            "organizerId number",
            with("organizerId", Some("123")),
            bad,
            &["organizerId"],
        ),
        case(
            "organizerId too long",
            with("organizerId", Some(&format!("\"{}\"", "o".repeat(65)))),
            bad,
            &["organizerId"],
        ),
        case(
            "organizerId with spaces",
            with("organizerId", Some(r#""org demo; drop""#)),
            bad,
            &["organizerId"],
        ),
        case(
            "eventId array",
            with("eventId", Some(r#"["ev"]"#)),
            bad,
            &["eventId"],
        ),
        case(
            "bad currency",
            with("currency", Some(r#""pesos""#)),
            bad,
            &["currency"],
        ),
        case(
            "metadata not object",
            with("metadata", Some(r#""note""#)),
            bad,
            &["metadata"],
        ),
        // Issue 10: what Postgres cannot store or give back, named by its path.
        case(
            "NUL in a metadata string",
            with("metadata", Some(r#"{"note":"a\u0000b"}"#)),
            bad,
            &["metadata.note"],
        ),
        case(
            "NUL in a metadata key",
            with("metadata", Some(r#"{"a\u0000":1}"#)),
            bad,
            &["metadata.a\\u0000"],
        ),
        case(
            "NUL deep in metadata",
            with("metadata", Some(r#"{"a":[{"b":["\u0000"]}]}"#)),
            bad,
            &["metadata.a[0].b[0]"],
        ),
        case(
            "metadata number at the f64 limit",
            with("metadata", Some(r#"{"n":1.7976931348623157e308}"#)),
            bad,
            &["metadata.n"],
        ),
        case(
            "metadata nested 70 levels",
            with(
                "metadata",
                Some(&format!(r#"{{"d":{}1{}}}"#, "[".repeat(70), "]".repeat(70))),
            ),
            bad,
            &["metadata"],
        ),
        case(
            "NUL in organizerId",
            with("organizerId", Some(r#""org\u0000""#)),
            bad,
            &["organizerId"],
        ),
        case("not json", "organizerId=org_demo".into(), bad, &[]),
        case(
            "truncated json",
            r#"{"organizerId":"org_demo""#.into(),
            bad,
            &[],
        ),
        case("json array", "[1,2]".into(), bad, &[]),
        case("empty body", String::new(), bad, &[]),
        case(
            "oversized body",
            format!(r#"{{"organizerId":"{}"}}"#, "x".repeat(70_000)),
            StatusCode::PAYLOAD_TOO_LARGE,
            &[],
        ),
    ];
    cases.push(Case {
        content_type: Some("text/plain"),
        ..case(
            "wrong content type",
            VALID.into(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &[],
        )
    });
    cases.push(Case {
        content_type: None,
        ..case(
            "no content type",
            VALID.into(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &[],
        )
    });
    cases.push(Case {
        token: None,
        ..case("no token", VALID.into(), StatusCode::UNAUTHORIZED, &[])
    });
    cases.push(Case {
        token: Some("wrong-token"),
        ..case("unknown token", VALID.into(), StatusCode::UNAUTHORIZED, &[])
    });

    for c in cases {
        let mut req = Request::builder().method("POST").uri("/director/assign");
        if let Some(ct) = c.content_type {
            req = req.header("content-type", ct);
        }
        if let Some(t) = c.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = app.request(req.body(Body::from(c.body)).unwrap()).await;
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            panic!(
                "{}: body is not JSON: {:?}",
                c.name,
                String::from_utf8_lossy(&bytes)
            )
        });
        assert_eq!(status, c.status, "{}: {body}", c.name);
        assert!(body["error"]["code"].is_string(), "{}: {body}", c.name);
        assert!(body["error"]["message"].is_string(), "{}: {body}", c.name);
        assert!(body["requestId"].is_string(), "{}: {body}", c.name);
        for field in c.fields {
            assert!(
                body["error"]["fields"][field].is_string(),
                "{}: field {field} not named in {body}",
                c.name
            );
        }
    }
    let tasks: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(tasks, 0, "no bad request created a task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_task_lookups_are_4xx() {
    let app = app().await;
    let get = |path: String, token: Option<&'static str>| {
        let app = &app;
        async move {
            let mut req = Request::builder().uri(path);
            if let Some(t) = token {
                req = req.header("authorization", format!("Bearer {t}"));
            }
            let resp = app.request(req.body(Body::empty()).unwrap()).await;
            let status = resp.status();
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .unwrap();
            (status, serde_json::from_slice::<Value>(&bytes).unwrap())
        }
    };
    let random = uuid::Uuid::now_v7();
    for (path, status) in [
        ("/tasks/not-a-uuid".to_string(), StatusCode::NOT_FOUND),
        (format!("/tasks/{random}"), StatusCode::NOT_FOUND),
        (format!("/tasks/{random}/result"), StatusCode::NOT_FOUND),
        (
            format!("/director/reports/tasks/{random}"),
            StatusCode::NOT_FOUND,
        ),
        (format!("/tasks/{random}?wait=abc"), StatusCode::BAD_REQUEST),
        (
            format!("/tasks/{random}?wait=100000"),
            StatusCode::BAD_REQUEST,
        ),
        ("/no/such/route".to_string(), StatusCode::NOT_FOUND),
    ] {
        let (got, body) = get(path.clone(), Some("demo-token")).await;
        assert_eq!(got, status, "{path}: {body}");
        assert!(body["requestId"].is_string());
    }
    let (got, body) = get(format!("/tasks/{random}?wait=abc"), Some("demo-token")).await;
    assert_eq!(got, StatusCode::BAD_REQUEST);
    assert!(body["error"]["fields"]["wait"].is_string());
    let (got, _) = get(format!("/tasks/{random}"), None).await;
    assert_eq!(got, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_honoured_and_generated() {
    let app = app().await;
    let req = Request::builder()
        .uri("/healthz")
        .header("x-request-id", "client-trace-123")
        .body(Body::empty())
        .unwrap();
    let resp = app.request(req).await;
    assert_eq!(resp.headers()["x-request-id"], "client-trace-123");
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body["requestId"], "client-trace-123");

    let req = Request::builder()
        .uri("/readyz")
        .body(Body::empty())
        .unwrap();
    let resp = app.request(req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(!resp.headers()["x-request-id"].is_empty());
}
