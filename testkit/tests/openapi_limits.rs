//! The limits the OpenAPI document states are the ones the server enforces: for every
//! numeric bound, array size and string length of a request body, query parameter or header,
//! read from the served document, the value at the bound is accepted and the first value
//! past it is refused with a 400 naming the field.

use axum::{
    body::Body,
    http::{Request, StatusCode},
    Router,
};
use jobs::testing::TestEnv;
use serde_json::{json, Map, Value};
use tower::ServiceExt;

async fn call(app: &Router, req: Request<Body>) -> (StatusCode, Value) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 22)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// `schema`, with a `$ref` to a component replaced by the component.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => &doc["components"]["schemas"][r.rsplit('/').next().unwrap()],
        None => schema,
    }
}

/// The alternatives a value may take (the items of `anyOf`/`oneOf`, or the schema itself),
/// resolved.
fn alternatives<'a>(doc: &'a Value, schema: &'a Value) -> Vec<&'a Value> {
    let schema = resolve(doc, schema);
    match schema["anyOf"].as_array().or(schema["oneOf"].as_array()) {
        Some(items) => items.iter().map(|i| resolve(doc, i)).collect(),
        None => vec![schema],
    }
}

/// A value an item schema accepts, different for each `i` (ids, e-mail addresses).
fn item(schema: &Value, i: usize) -> Value {
    if schema["format"] == "email" {
        json!(format!("user{i}@example.com"))
    } else {
        json!(format!("i{i}"))
    }
}

/// For one alternative of a field: (value at the bound, value past it) pairs.
fn probes(doc: &Value, alt: &Value) -> Vec<(Value, Value)> {
    let mut out = Vec::new();
    let number = |k: &str| alt[k].as_f64();
    match alt["type"].as_str() {
        Some("integer") => {
            if let Some(max) = number("maximum") {
                out.push((json!(max as i64), json!(max as i64 + 1)));
            }
            if let Some(min) = number("minimum") {
                out.push((json!(min as i64), json!(min as i64 - 1)));
            }
        }
        Some("number") => {
            // Money: at most 2 decimals, so one cent is the step.
            assert_eq!(alt["multipleOf"], json!(0.01), "{alt}");
            let cents = |x: f64| (x * 100.0).round() as i64;
            let money = |c: i64| json!(c as f64 / 100.0);
            if let Some(max) = number("maximum") {
                out.push((money(cents(max)), money(cents(max) + 1)));
            }
            if let Some(min) = number("minimum") {
                out.push((money(cents(min)), money(cents(min) - 1)));
            }
            if let Some(min) = number("exclusiveMinimum") {
                out.push((money(cents(min) + 1), money(cents(min))));
            }
        }
        Some("array") => {
            let items = resolve(doc, &alt["items"]);
            let list = |n: usize| Value::Array((0..n).map(|i| item(items, i)).collect());
            if let Some(max) = alt["maxItems"].as_u64() {
                out.push((list(max as usize), list(max as usize + 1)));
            }
            if let Some(min) = alt["minItems"].as_u64().filter(|m| *m > 0) {
                out.push((list(min as usize), list(min as usize - 1)));
            }
        }
        Some("string") => {
            // Length bounds of free text (the empty-string alternative has maxLength 0).
            if let Some(max) = alt["maxLength"].as_u64().filter(|m| *m > 0) {
                let text = |n: u64| json!("a".repeat(n as usize));
                out.push((text(max), text(max + 1)));
            }
        }
        _ => {}
    }
    out
}

/// What a probe showed: accepted means no 400 naming the field; refused means a 400 that
/// names it.
fn names_field(status: StatusCode, body: &Value, field: &str) -> bool {
    status == StatusCode::BAD_REQUEST
        && body["error"]["fields"]
            .as_object()
            .is_some_and(|f| f.keys().any(|k| k == field))
}

fn post(uri: &str, body: &Value) -> Request<Body> {
    send(axum::http::Method::POST, uri, body)
}

fn send(method: axum::http::Method, uri: &str, body: &Value) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", "Bearer admin-token")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_limits_are_the_enforced_ones() {
    let env = TestEnv::new().await;
    // The demo event and guests, so the delivery routes get past their existence checks.
    env.seed_demo().await;
    sqlx::query(
        "INSERT INTO guests (id, event_id, name, email, phone, status) \
         VALUES ('g1', 'ev_demo', 'Ana Demo', 'ana@example.com', '+5215550000', 'confirmed')",
    )
    .execute(&env.pool)
    .await
    .unwrap();
    // The built-in schedules, so `PATCH /admin/schedules/{id}` finds one.
    let schedules = jobs::schedules::builtin(&env.config).unwrap();
    engine::schedule::store::upsert_config(&env.pool, &schedules, chrono::Utc::now())
        .await
        .unwrap();
    let config = api::ApiConfig::builder(env.config.clone())
        .tokens(api::auth::Tokens::parse("admin-token:ops:admin").unwrap())
        // Room for the longest lists the bodies allow.
        .body_limit(1 << 20)
        .build();
    let app = api::router(api::AppState::new(
        config,
        env.pool.clone(),
        env.redis.clone(),
    ));
    let (_, doc) = call(
        &app,
        Request::get("/openapi.json").body(Body::empty()).unwrap(),
    )
    .await;
    let task = uuid::Uuid::now_v7().to_string();
    let concrete = |path: &str| {
        path.replace("/admin/schedules/{id}", "/admin/schedules/kpi_refresh")
            .replace("{id}", &task)
            .replace("{eventId}", "ev_demo")
            .replace("{guestId}", "g1")
    };
    // A valid body per route; a probe replaces one field (and drops the fields it excludes).
    let base = |path: &str| match path {
        "/director/assign" => json!({"organizerId": "org_demo", "eventId": "ev_demo",
            "type": "prepaid", "tickets": 1, "price": 1}),
        "/director/payments" => json!({"organizerId": "org_demo", "amount": 1}),
        "/director/reports/exports" => json!({"report": "ledger", "format": "csv"}),
        "/events/{eventId}/guests/{guestId}/send" => json!({"channel": "email"}),
        "/events/{eventId}/deliveries" => json!({"channel": "email", "all": true}),
        "/payments/intent" => json!({"amount": 1, "currency": "MXN"}),
        "/admin/schedules/{id}" => json!({}),
        other => panic!("no valid body for {other}: add one"),
    };
    // The required query parameters a probe of another one keeps.
    let base_query = |path: &str| match path {
        "/admin/tasks/retry" => "status=dead&",
        _ => "",
    };
    let excludes = |field: &str| match field {
        "amountCents" => Some("amount"),
        "guestIds" => Some("all"),
        _ => None,
    };
    let mut checked = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            // Bodies.
            if let Some(schema) = op["requestBody"]["content"]["application/json"]
                .get("schema")
                .map(|s| resolve(&doc, s))
            {
                let properties = schema["properties"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                for (field, field_schema) in &properties {
                    for alt in alternatives(&doc, field_schema) {
                        for (at, past) in probes(&doc, alt) {
                            for (value, accepted) in [(&at, true), (&past, false)] {
                                let mut body: Map<String, Value> =
                                    base(path).as_object().unwrap().clone();
                                if let Some(other) = excludes(field) {
                                    body.remove(other);
                                }
                                body.insert(field.clone(), value.clone());
                                let body = Value::Object(body);
                                let verb: axum::http::Method =
                                    method.to_uppercase().parse().unwrap();
                                let (status, reply) =
                                    call(&app, send(verb, &concrete(path), &body)).await;
                                let refused = names_field(status, &reply, field);
                                assert_eq!(
                                    !refused,
                                    accepted,
                                    "{method} {path} {field} = {}: {status} {reply}",
                                    value.to_string().chars().take(80).collect::<String>()
                                );
                            }
                            checked.push(format!("{method} {path} body.{field}"));
                        }
                    }
                }
            }
            // Query parameters and headers.
            for param in op["parameters"].as_array().into_iter().flatten() {
                let name = param["name"].as_str().unwrap();
                for alt in alternatives(&doc, &param["schema"]) {
                    for (at, past) in probes(&doc, alt) {
                        for (value, accepted) in [(&at, true), (&past, false)] {
                            let text = match value {
                                Value::String(s) => s.clone(),
                                other => other.to_string(),
                            };
                            let req = match param["in"].as_str() {
                                Some("query") => Request::builder()
                                    .method(method.to_uppercase().as_str())
                                    .uri(format!(
                                        "{}?{}{name}={text}",
                                        concrete(path),
                                        base_query(path)
                                    ))
                                    .header("authorization", "Bearer admin-token")
                                    .body(Body::empty())
                                    .unwrap(),
                                Some("header") => {
                                    let mut req = if op.get("requestBody").is_some() {
                                        post(&concrete(path), &base(path))
                                    } else {
                                        Request::post(concrete(path))
                                            .header("authorization", "Bearer admin-token")
                                            .body(Body::empty())
                                            .unwrap()
                                    };
                                    req.headers_mut().insert(
                                        axum::http::HeaderName::from_bytes(name.as_bytes())
                                            .unwrap(),
                                        text.parse().unwrap(),
                                    );
                                    req
                                }
                                _ => continue,
                            };
                            let (status, reply) = call(&app, req).await;
                            let refused = names_field(status, &reply, name);
                            assert_eq!(
                                !refused, accepted,
                                "{method} {path} {name} = {text:.80}: {status} {reply}"
                            );
                        }
                        checked.push(format!("{method} {path} {name}"));
                    }
                }
            }
        }
    }
    // The probes reached the limits the document states (a schema that lost them would
    // make this list shrink).
    for expected in [
        "post /director/assign body.tickets",
        "post /director/assign body.price",
        "post /director/assign body.organizerId",
        "post /director/payments body.amount",
        "post /director/payments body.amountCents",
        "post /director/reports/exports body.notifyEmails",
        "post /director/reports/exports body.pageSize",
        "post /events/{eventId}/deliveries body.guestIds",
        "post /director/assign Idempotency-Key",
        "get /director/reports/overview pageSize",
        "get /director/reports/overview limit",
        "get /admin/tasks page",
        "get /tasks/{id} wait",
        "post /director/assign body.delaySeconds",
        "post /events/{eventId}/guests/{guestId}/send body.delaySeconds",
        "patch /admin/schedules/{id} body.intervalSeconds",
        "patch /admin/schedules/{id} body.maxCatchUp",
    ] {
        assert!(
            checked.iter().any(|c| c == expected),
            "{expected} not probed: {checked:#?}"
        );
    }
    assert!(checked.len() >= 60, "{} limits probed", checked.len());
}
