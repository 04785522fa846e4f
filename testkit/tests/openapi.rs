//! `/openapi.json` stays true in both directions:
//! * every documented path and method reaches a handler (not the router's "no such route"
//!   or "method not allowed");
//! * every routed path and method is documented: `api::documented_routes` registers each
//!   handler together with its operation (`utoipa_axum::routes!`), and no source file of the
//!   api adds a route any other way — except the operator console's HTML pages, which are
//!   not API operations: routed only in `api/src/console/mod.rs`, all under `/console`,
//!   merged once into `api::router`, and absent from the document;
//!
//! and the served document is the one derived from the code, with the configured limits.

use std::path::{Path, PathBuf};

use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use jobs::testing::TestEnv;
use serde_json::Value;
use tower::ServiceExt;

fn config(env: &TestEnv) -> api::ApiConfig {
    api::ApiConfig::builder(env.config.clone())
        .tokens(api::auth::Tokens::parse("admin-token:ops:admin").unwrap())
        .build()
}

async fn served_document(app: &axum::Router) -> Value {
    let resp = app
        .clone()
        .oneshot(Request::get("/openapi.json").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 22)
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_route_exists() {
    let env = TestEnv::new().await;
    let app = api::router(api::AppState::new(
        config(&env),
        env.pool.clone(),
        env.redis.clone(),
    ));
    let doc = served_document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 30, "{} paths", paths.len());
    let id = uuid::Uuid::now_v7().to_string();
    let mut operations = 0;
    for (path, item) in paths {
        let concrete = path
            .replace("{id}", &id)
            .replace("{key}", "exports/x/y.csv")
            .replace(['{', '}'], "");
        for method in item.as_object().unwrap().keys() {
            assert!(METHODS.contains(&method.as_str()), "{path}: {method}");
            operations += 1;
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
    assert!(operations >= 33, "{operations} operations");
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The body of `fn name` in `text` (from its opening brace to the matching one).
fn function_body<'a>(text: &'a str, name: &str) -> &'a str {
    let start = text
        .find(&format!("fn {name}("))
        .unwrap_or_else(|| panic!("fn {name} not found"));
    let open = start + text[start..].find('{').unwrap();
    let mut depth = 0;
    for (i, c) in text[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return &text[open..open + i + 1];
                }
            }
            _ => {}
        }
    }
    panic!("fn {name} has no end")
}

/// Whether `text` adds a route to an axum router without its operation: every way axum
/// has to route a path, other than `OpenApiRouter::routes` and `OpenApiRouter::nest` (which
/// take documented routes only).
fn undocumented_registrations(text: &str) -> Vec<&'static str> {
    [
        ".route(",
        ".route_service(",
        ".nest_service(",
        ".merge(",
        "routing::get",
        "routing::post",
        "routing::delete",
        "routing::put",
        "routing::patch",
        "routing::any",
        "routing::on(",
        "MethodRouter",
    ]
    .into_iter()
    .filter(|needle| text.contains(needle))
    .collect()
}

/// How `api::router` adds the console's HTML pages (see the module doc).
const CONSOLE_MERGE: &str = ".merge(console::router(state.clone()))";

#[test]
fn the_console_pages_stay_out_of_the_document() {
    let (_, doc) = api::documented_routes().split_for_parts();
    let doc = serde_json::to_value(doc).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 30);
    assert!(
        paths.keys().all(|p| !p.starts_with("/console")),
        "an HTML page of the console is not an API operation"
    );
}

#[test]
fn every_route_is_registered_with_its_operation() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../api/src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    assert!(files.len() > 10, "{files:?}");
    let mut found = Vec::new();
    let console = src.join("console/mod.rs");
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        if *file == console {
            // The HTML pages' router: every path it routes is a /console page.
            let paths: Vec<&str> = text
                .split(".route(\"")
                .skip(1)
                .map(|rest| &rest[..rest.find('"').unwrap()])
                .collect();
            assert!(paths.len() >= 10, "console routes: {paths:?}");
            for p in paths {
                assert!(
                    p == "/console" || p.starts_with("/console/"),
                    "{p}: console/mod.rs may only route /console pages"
                );
            }
            continue;
        }
        // The one merge allowed: the console's pages into `api::router`.
        let text = if file.ends_with("lib.rs") {
            assert_eq!(
                function_body(&text, "router")
                    .matches(CONSOLE_MERGE)
                    .count(),
                1,
                "api::router merges the console once"
            );
            text.replacen(CONSOLE_MERGE, "", 1)
        } else {
            text
        };
        for needle in undocumented_registrations(&text) {
            found.push(format!("{}: {needle}", file.display()));
        }
        // Nesting is documented only on an OpenApiRouter, inside `documented_routes`.
        let nests = text.matches(".nest(").count();
        let documented_nests = if file.ends_with("lib.rs") {
            function_body(&text, "documented_routes")
                .matches(".nest(")
                .count()
        } else {
            0
        };
        if nests != documented_nests {
            found.push(format!(
                "{}: .nest( outside documented_routes",
                file.display()
            ));
        }
    }
    assert!(
        found.is_empty(),
        "routes added without their OpenAPI operation (register them with \
         `.routes(routes!(handler))` in api::documented_routes): {found:#?}"
    );
    // `router` serves exactly what `documented_routes` collected.
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let router = function_body(&lib, "router");
    assert!(
        router.contains("documented_routes().split_for_parts()"),
        "api::router must be built from api::documented_routes"
    );
}

#[test]
fn the_guard_sees_an_undocumented_route() {
    // The check above is only as good as its patterns: each way to route without docs is seen.
    for added in [
        r#"Router::new().route("/x", get(h))"#,
        r#"r.route_service("/x", svc)"#,
        r#"r.merge(other)"#,
        r#"r.nest_service("/x", svc)"#,
        r#"axum::routing::post(h)"#,
    ] {
        assert!(
            !undocumented_registrations(added).is_empty(),
            "{added} not seen"
        );
    }
    assert!(undocumented_registrations(".routes(routes!(tasks::cancel))").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_states_the_configured_limits() {
    let env = TestEnv::new().await;
    let mut config = config(&env);
    config.body_limit = 12_345;
    config.long_poll_max = 7;
    let state = api::AppState::new(config, env.pool.clone(), env.redis.clone());
    let waiters = state.hub.limits().per_requester;
    let built = serde_json::to_value(api::document(&state)).unwrap();
    let app = api::router(state);
    let doc = served_document(&app).await;
    assert_eq!(doc, built, "the served document is the derived one");
    let wait = doc["paths"]["/tasks/{id}"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "wait")
        .unwrap()
        .clone();
    assert_eq!(wait["schema"]["maximum"], 7, "{wait}");
    // The long-poll refuses what the document says is too long, and takes its maximum.
    let over = app
        .clone()
        .oneshot(
            Request::get(format!("/tasks/{}?wait=8", uuid::Uuid::now_v7()))
                .header("authorization", "Bearer admin-token")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(over.status(), StatusCode::BAD_REQUEST);
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let too_large = op["responses"]["413"]["description"].as_str().unwrap_or("");
            assert!(
                too_large.contains("12345 bytes"),
                "{method} {path}: 413 {too_large:?}"
            );
            if let Some(waiting) = op["responses"]["429"]["description"].as_str() {
                assert!(waiting.contains(&format!("({waiters})")), "{waiting}");
            }
        }
    }
    assert!(operations >= 33, "{operations} operations");
    assert!(doc["info"]["description"]
        .as_str()
        .unwrap()
        .contains("at most 12345 bytes"));
}
