//! One module per console page, each with its actions.

pub mod create;
pub mod login;
pub mod overview;
pub mod queues;
pub mod schedules;
pub mod task;
pub mod tasks;
pub mod workers;

use axum::response::{Html, IntoResponse, Redirect, Response};

/// A rendered page.
pub fn html(m: maud::Markup) -> Response {
    Html(m.into_string()).into_response()
}

/// After an action: back to `to` with a notice to show (`?done=`).
pub fn back(to: &str, notice: &str) -> Response {
    let sep = if to.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{to}{sep}done={}", super::filter::encode(notice))).into_response()
}

/// The `?done=` notice of a page reached after an action.
pub fn notice(q: &std::collections::HashMap<String, String>) -> maud::Markup {
    maud::html! {
        @if let Some(n) = q.get("done").filter(|n| !n.is_empty()) {
            p.notice id="notice" { (n.chars().take(300).collect::<String>()) }
        }
    }
}
