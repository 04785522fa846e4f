//! `/openapi.json` stays true: every documented path and method reaches a handler (not the
//! router's "no such route" or "method not allowed"), and the api serves the document.

use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use serde_json::Value;
use testkit::TestApp;
use tower::ServiceExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_route_exists() {
    let test_app = TestApp::builder()
        .tokens("admin-token:ops:admin")
        .spawn()
        .await;
    let app = test_app.router.clone();
    let resp = app
        .clone()
        .oneshot(Request::get("/openapi.json").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let doc: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 30, "{} paths", paths.len());
    let id = uuid::Uuid::now_v7().to_string();
    for (path, item) in paths {
        let concrete = path
            .replace("{id}", &id)
            .replace("{key}", "exports/x/y.csv")
            .replace(['{', '}'], "");
        for method in item.as_object().unwrap().keys() {
            let mut req = Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(&concrete)
                .header("authorization", "Bearer admin-token");
            let body = if method == "post" {
                req = req.header("content-type", "application/json");
                Body::from("{}")
            } else {
                Body::empty()
            };
            let resp = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
            let status = resp.status();
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .unwrap();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert!(
                !(status == StatusCode::NOT_FOUND && body["error"]["message"] == "no such route"),
                "{method} {path} is documented but not routed"
            );
            assert!(
                !status.is_server_error(),
                "{method} {path} → {status} {body}"
            );
        }
    }
}
