//! The page frame and the small pieces every page uses. maud escapes every interpolated
//! value (`(x)`); nothing here writes `PreEscaped` around data.

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};

use crate::auth::Principal;

/// A whole page: head, navigation, who is signed in, and `body`.
pub fn page(title: &str, who: Option<&Principal>, body: Markup) -> maud::Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · taquilla console" }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/console" { "taquilla" }
                    @if let Some(p) = who {
                        nav {
                            a href="/console" { "Overview" }
                            a href="/console/tasks" { "Tasks" }
                            a href="/console/tasks?status=dead" { "Dead letters" }
                            a href="/console/workers" { "Workers" }
                            a href="/console/schedules" { "Schedules" }
                            @if super::session::may_act(p) {
                                a href="/console/new" { "Run maintenance" }
                            }
                        }
                        span.who {
                            (p.requester) " · "
                            span id="role" { (if super::session::may_act(p) { "admin" } else { "read-only operator" }) }
                            form.inline method="post" action="/console/logout" {
                                button type="submit" id="logout" { "Log out" }
                            }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

pub fn error_page(status: StatusCode, message: &str) -> String {
    page(
        status.canonical_reason().unwrap_or("Error"),
        None,
        html! {
            p.error id="error" { (status.as_u16()) " — " (message) }
            p { a href="/console" { "Back to the console" } }
        },
    )
    .into_string()
}

/// `12:04:05 UTC, 3 min ago`.
pub fn when(t: DateTime<Utc>) -> Markup {
    html! { time datetime=(t.to_rfc3339()) title=(t.to_rfc3339()) { (t.format("%Y-%m-%d %H:%M:%S")) " · " (ago(t)) } }
}

pub fn when_opt(t: Option<DateTime<Utc>>) -> Markup {
    match t {
        Some(t) => when(t),
        None => html! { span.muted { "—" } },
    }
}

/// A human duration: `45 s`, `12 min`, `3 h`, `2 d`.
pub fn duration(secs: f64) -> String {
    let s = secs.max(0.0);
    if s < 90.0 {
        format!("{s:.0} s")
    } else if s < 5400.0 {
        format!("{:.0} min", s / 60.0)
    } else if s < 172_800.0 {
        format!("{:.1} h", s / 3600.0)
    } else {
        format!("{:.1} d", s / 86_400.0)
    }
}

fn ago(t: DateTime<Utc>) -> String {
    let secs = (Utc::now() - t).num_milliseconds() as f64 / 1000.0;
    if secs >= 0.0 {
        format!("{} ago", duration(secs))
    } else {
        format!("in {}", duration(-secs))
    }
}

/// JSON, indented, escaped.
pub fn json(v: &serde_json::Value) -> Markup {
    let text = serde_json::to_string_pretty(v).unwrap_or_default();
    html! { pre.json { (text) } }
}

/// A status as a coloured tag.
pub fn status(s: &str) -> Markup {
    html! { span class={ "status st-" (s) } { (s) } }
}

/// A form with one button posting to `action` (a console action).
pub fn action_button(action: &str, label: &str, id: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            button type="submit" id=(id) { (label) }
        }
    }
}
