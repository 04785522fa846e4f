//! The console's access rules, over HTTP without a browser (so they hold where Chromium is
//! missing too): the login form and its cookie, refusals without a session, from another
//! site, and of a read-only operator's action; bad filters named; values escaped.

use axum::{
    body::Body,
    http::{header, Request, StatusCode},
    response::Response,
};
use testkit::{TestApp, ADMIN};
use tower::ServiceExt;

const OPERATOR: &str = "operator-token-access";

async fn app() -> TestApp {
    TestApp::builder()
        .tokens(format!(
            "{ADMIN}:ops:admin,{OPERATOR}:watch:operator,demo-token:demo"
        ))
        .spawn()
        .await
}

async fn send(app: &TestApp, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let resp: Response = app.router.clone().oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 22).await.unwrap();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

fn login(token: &str, site: &str) -> Request<Body> {
    Request::post("/console/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("sec-fetch-site", site)
        .body(Body::from(format!("token={token}")))
        .unwrap()
}

/// Signs in with `token` and returns the cookie pair to send back.
async fn session(app: &TestApp, token: &str) -> String {
    let (status, headers, body) = send(app, login(token, "same-origin")).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let cookie = headers[header::SET_COOKIE].to_str().unwrap().to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/console", "Max-Age="] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "development serves plain http: {cookie}"
    );
    assert!(
        !cookie.contains(token),
        "the cookie never carries the token"
    );
    cookie.split(';').next().unwrap().to_string()
}

fn get(path: &str, cookie: &str) -> Request<Body> {
    Request::get(path)
        .header("cookie", cookie)
        .body(Body::empty())
        .unwrap()
}

fn post(path: &str, cookie: &str, site: &str) -> Request<Body> {
    Request::post(path)
        .header("cookie", cookie)
        .header("sec-fetch-site", site)
        .body(Body::empty())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_origins_and_roles_are_enforced() {
    let app = app().await;

    // No session: pages go to the login form, actions are refused.
    let (status, headers, _) = send(&app, get("/console/tasks", "")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/console/login");
    let (status, _, _) = send(
        &app,
        post("/console/queues/maintenance/pause", "", "same-origin"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = send(
        &app,
        get("/console", "taquilla_console=v1.9999999999.00.00"),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "a forged cookie is no session"
    );

    // Login: unknown and client tokens are refused, and so is a login from another site.
    assert_eq!(
        send(&app, login("nope-nope-nope", "same-origin")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&app, login("demo-token", "same-origin")).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(&app, login(ADMIN, "cross-site")).await.0,
        StatusCode::FORBIDDEN
    );

    let admin = session(&app, ADMIN).await;
    let (status, headers, body) = send(&app, get("/console", &admin)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .contains("script-src 'self'"));
    assert!(
        body.contains("id=\"pause-maintenance\""),
        "an admin may pause"
    );

    // An admin's session used from another site: refused, nothing changed.
    let (status, _, _) = send(
        &app,
        post("/console/queues/maintenance/pause", &admin, "cross-site"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(engine::transport::pause::list(&app.pool)
        .await
        .unwrap()
        .is_empty());
    let (status, _, _) = send(
        &app,
        post("/console/queues/maintenance/pause", &admin, "same-origin"),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let paused = engine::transport::pause::list(&app.pool).await.unwrap();
    assert_eq!((paused.len(), paused[0].paused_by.as_str()), (1, "ops"));
    let recorded: (String, String, String) =
        sqlx::query_as("SELECT actor, action, target FROM task_actions ORDER BY id DESC LIMIT 1")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        recorded,
        ("ops".into(), "pause".into(), "queue:maintenance".into())
    );

    // A read-only operator sees the pages, no action button, and is refused an action.
    let operator = session(&app, OPERATOR).await;
    let (status, _, body) = send(&app, get("/console", &operator)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("read-only operator"));
    assert!(
        !body.contains("<button type=\"submit\" id=\"resume-"),
        "no action for an operator"
    );
    let (status, _, _) = send(
        &app,
        post(
            "/console/queues/maintenance/resume",
            &operator,
            "same-origin",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        engine::transport::pause::list(&app.pool)
            .await
            .unwrap()
            .len(),
        1
    );
    let (status, _, _) = send(&app, get("/console/new", &operator)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Bad filters are 400s naming their field; values are escaped.
    for (query, field) in [
        ("queue=nope", "queue"),
        ("status=done", "status"),
        ("createdFrom=yesterday", "createdFrom"),
        ("search=%5B1%5D", "search"),
        ("before=x", "before"),
    ] {
        let (status, _, body) = send(&app, get(&format!("/console/tasks?{query}"), &admin)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert!(body.contains(&format!("{field}:")), "{query}: {body}");
    }
    let (status, _, body) = send(
        &app,
        get(
            "/console/tasks?requester=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
            &admin,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!body.contains("<script>alert"), "escaped");
    assert!(body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));

    // Logout clears the cookie.
    let (status, headers, _) = send(&app, post("/console/logout", &admin, "same-origin")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secure_setting_marks_the_cookie_secure() {
    let app = TestApp::builder()
        .tokens(format!("{ADMIN}:ops:admin"))
        .api(|c| {
            c.console(api::console::session::SessionConfig::with_secret(
                &[9; 32],
                true,
                std::time::Duration::from_secs(3600),
            ))
        })
        .spawn()
        .await;
    let (_, headers, _) = send(&app, login(ADMIN, "same-origin")).await;
    let cookie = headers[header::SET_COOKIE].to_str().unwrap();
    assert!(
        cookie.contains("; Secure") && cookie.contains("Max-Age=3600"),
        "{cookie}"
    );
}
