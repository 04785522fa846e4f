//! `/console/login`: an admin or operator token in, a signed session cookie out.

use axum::{
    extract::State,
    http::{header, HeaderMap, Method, StatusCode},
    response::{IntoResponse, Redirect, Response},
    Form,
};
use maud::html;
use serde::Deserialize;

use super::html;
use crate::console::{layout, session, Error};
use crate::AppState;

fn form(error: Option<&str>) -> maud::Markup {
    layout::page(
        "Sign in",
        None,
        html! {
            @if let Some(e) = error { p.error id="error" { (e) } }
            form method="post" action="/console/login" {
                p { label { "Admin or operator token " input type="password" name="token" id="token" autocomplete="off" required; } }
                p { button type="submit" id="login" { "Sign in" } }
            }
            p.muted { "Tokens are the api's (API_TOKENS): an admin may act, an operator only looks." }
        },
    )
}

pub async fn page() -> Response {
    html(form(None))
}

#[derive(Deserialize)]
pub struct Login {
    #[serde(default)]
    token: String,
}

pub async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(login): Form<Login>,
) -> Response {
    // Login CSRF: a foreign page must not sign a browser into someone else's session.
    if !session::same_origin(&Method::POST, &headers) {
        return Error::new(
            StatusCode::FORBIDDEN,
            "refused: sign in from the console's own page",
        )
        .into_response();
    }
    let principal = state.tokens.lookup(login.token.trim()).cloned();
    match principal {
        Some(p) if p.can_observe() => {
            let cookie = state
                .config
                .console
                .issue(login.token.trim(), chrono::Utc::now().timestamp());
            tracing::info!(operator = %p.requester, role = ?p.role, "console sign-in");
            (
                [(header::SET_COOKIE, state.config.console.set_cookie(&cookie))],
                Redirect::to("/console"),
            )
                .into_response()
        }
        Some(p) => {
            tracing::info!(requester = %p.requester, "console sign-in refused: not an operator");
            (
                StatusCode::FORBIDDEN,
                html(form(Some(
                    "this token is a client's: the console needs an admin or operator token",
                ))),
            )
                .into_response()
        }
        None => (StatusCode::UNAUTHORIZED, html(form(Some("unknown token")))).into_response(),
    }
}

pub async fn logout(State(state): State<AppState>) -> Response {
    (
        [(header::SET_COOKIE, state.config.console.clear_cookie())],
        Redirect::to("/console/login"),
    )
        .into_response()
}
