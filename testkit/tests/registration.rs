//! Every kind is wired end to end: registered for the worker, reachable from a route of the
//! api's enqueue table (or declared as created elsewhere), that route documented and served,
//! and its queue one the worker serves by default. Adding a kind and forgetting a step fails
//! here.

use std::collections::BTreeSet;

use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use serde_json::Value;
use testkit::{TestApp, ADMIN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_registered_kind_is_enqueued_routed_documented_and_served() {
    let registry = jobs::kinds::registry().expect("no duplicate kind names");
    let registered: BTreeSet<&str> = registry.iter().map(|k| k.name).collect();
    let from_api: BTreeSet<&str> = api::enqueue_table::ALL
        .iter()
        .map(|t| t.kind.name)
        .collect();
    let elsewhere: BTreeSet<&str> = jobs::kinds::NOT_FROM_HTTP.into_iter().collect();

    assert_eq!(
        from_api.len(),
        api::enqueue_table::ALL.len(),
        "a kind appears twice in the enqueue table"
    );
    assert!(
        from_api.is_disjoint(&elsewhere),
        "{:?} are both routed and declared as created elsewhere",
        from_api.intersection(&elsewhere).collect::<Vec<_>>()
    );
    let covered: BTreeSet<&str> = from_api.union(&elsewhere).copied().collect();
    assert_eq!(
        registered, covered,
        "registered kinds vs kinds the api enqueues or that are created elsewhere"
    );

    for kind in registry.iter() {
        assert!(
            jobs::queues::ALL.contains(&kind.queue),
            "kind {} uses queue {:?}, which no worker serves by default",
            kind.name,
            kind.queue
        );
        let info = kind.info();
        if let Some(t) = api::enqueue_table::ALL
            .iter()
            .find(|t| t.kind.name == kind.name)
        {
            assert_eq!(
                t.kind, info,
                "the api enqueues {} with another policy",
                kind.name
            );
        }
    }

    // Each table route is documented with its method and answers (it is routed).
    let app = TestApp::spawn().await;
    let resp = app
        .request(Request::get("/openapi.json").body(Body::empty()).unwrap())
        .await;
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 22)
        .await
        .unwrap();
    let doc: Value = serde_json::from_slice(&bytes).unwrap();
    // Path parameters are compared by position, not by name.
    let shape = |p: &str| {
        p.split('/')
            .map(|seg| if seg.starts_with('{') { "{}" } else { seg })
            .collect::<Vec<_>>()
            .join("/")
    };
    let documented = |path: &str, method: &str| {
        doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .any(|(p, item)| shape(p) == shape(path) && item[method].is_object())
    };
    for t in api::enqueue_table::ALL {
        assert!(
            documented(t.path, t.method),
            "{} {} (kind {}) is not in the OpenAPI document",
            t.method,
            t.path,
            t.kind.name
        );
        let uri = t
            .path
            .replace("{event_id}", "ev_x")
            .replace("{guest_id}", "g_x");
        let resp = app
            .request(
                Request::builder()
                    .method(t.method.to_uppercase().as_str())
                    .uri(&uri)
                    .header("authorization", format!("Bearer {ADMIN}"))
                    .header("content-type", "application/json")
                    .body(Body::from("{}"))
                    .unwrap(),
            )
            .await;
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{} {uri}", t.method);
        assert!(
            !(status == StatusCode::NOT_FOUND && body["error"]["message"] == "no such route"),
            "{} {uri} is in the enqueue table but not routed",
            t.method
        );
    }
}

#[test]
fn a_kind_name_registered_twice_is_refused() {
    let registry = jobs::kinds::registry().unwrap();
    let twice = registry.with::<jobs::kinds::ping::Ping>();
    let err = twice.expect_err("a second `ping` must be refused");
    assert_eq!(err.to_string(), "job kind \"ping\" is registered twice");
}
