//! The operator console (issue 14): server-rendered HTML pages under `/console`, shipped
//! inside the api binary (templates compiled with maud, which escapes every value it
//! interpolates; the stylesheet and the small polling script embedded with `include_str!`).
//!
//! These routes are HTML for browsers, not API operations: they are routed here, outside
//! `documented_routes`, and kept out of the OpenAPI document on purpose
//! (`testkit/tests/openapi.rs` allows route registrations in this file only, all under
//! `/console`). Access: a session cookie from the login form ([`session`]), an admin or an
//! operator token; operators see everything and no action, and the server refuses their
//! actions too; every write needs the same origin; every action is audited ([`audit`]).

pub mod audit;
mod filter;
mod layout;
mod pages;
pub mod session;

use axum::{
    extract::{Request, State},
    http::{header, HeaderValue, Method, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
    Router,
};

use crate::{auth::Principal, AppState};
use pages::{create, login, overview, queues, schedules, task, tasks, workers};

/// Every console route (`openapi.rs` checks that each starts with `/console`).
pub fn router(state: AppState) -> Router<AppState> {
    let private = Router::new()
        .route("/console", get(overview::page))
        .route("/console/live/overview", get(overview::live))
        .route("/console/tasks", get(tasks::page))
        .route(
            "/console/tasks/bulk",
            get(tasks::confirm_bulk).post(tasks::bulk),
        )
        .route("/console/tasks/{id}", get(task::page))
        .route("/console/live/tasks/{id}", get(task::live))
        .route("/console/tasks/{id}/{action}", post(task::act))
        .route("/console/dead/{kind}/redrive", post(queues::redrive_kind))
        .route("/console/queues/{queue}/{action}", post(queues::act))
        .route("/console/workers", get(workers::page))
        .route("/console/schedules", get(schedules::page))
        .route("/console/schedules/{id}/{action}", post(schedules::act))
        .route("/console/new", get(create::page).post(create::submit))
        .route("/console/logout", post(login::logout))
        .route_layer(middleware::from_fn_with_state(state, require_session));
    Router::new()
        .route("/console/login", get(login::page).post(login::submit))
        .route("/console/assets/{file}", get(asset))
        .merge(private)
        .layer(middleware::from_fn(headers))
}

/// Session and origin checks before any private console handler.
async fn require_session(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let now = chrono::Utc::now().timestamp();
    let principal = session::cookie_value(req.headers())
        .and_then(|v| state.config.console.verify(v, &state.tokens, now));
    let Some(principal) = principal else {
        if req.method() == Method::GET {
            return Redirect::to("/console/login").into_response();
        }
        return Error::new(StatusCode::UNAUTHORIZED, "not signed in: log in again").into_response();
    };
    if !session::same_origin(req.method(), req.headers()) {
        return Error::new(
            StatusCode::FORBIDDEN,
            "refused: a console action must come from a console page (same origin)",
        )
        .into_response();
    }
    req.extensions_mut().insert(principal);
    next.run(req).await
}

/// Headers of every console answer: nothing inline runs (the script is a file of ours), no
/// framing, no caching of pages that show tasks.
async fn headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return Error::new(StatusCode::NOT_FOUND, "no such file").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// A console error: an HTML page with the status and what went wrong.
#[derive(Debug)]
pub struct Error {
    status: StatusCode,
    message: String,
}

impl Error {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// A 400 naming the field.
    pub fn field(field: &str, problem: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, format!("{field}: {problem}"))
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// A read-only operator tried to act.
    pub fn read_only() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "read-only operator: an admin token is required to act",
        )
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        tracing::error!(error = %e, "console: database error");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Postgres did not answer; try again",
        )
    }
}

impl From<redis::RedisError> for Error {
    fn from(e: redis::RedisError) -> Self {
        tracing::error!(error = %e, "console: redis error");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Redis did not answer; try again",
        )
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let body = layout::error_page(self.status, &self.message);
        (self.status, body).into_response()
    }
}

pub type Page = Result<Response, Error>;

/// Refuses the action unless `p` is an admin.
pub fn require_admin(p: &Principal) -> Result<(), Error> {
    if session::may_act(p) {
        Ok(())
    } else {
        Err(Error::read_only())
    }
}
