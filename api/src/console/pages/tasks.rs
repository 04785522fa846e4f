//! `/console/tasks`: the task list — filters (queue, kind, status, requester, created and
//! finished windows), search inside params or results (JSON containment), keyset pages
//! (newest first, `?before=<last id>`) — and the bulk actions on everything matching the
//! filter (not only the page), each behind a confirmation that says how many tasks it
//! touches.

use std::collections::HashMap;

use axum::{
    extract::{Query, State},
    Extension, Form,
};
use engine::{browse, store, TaskStatus};
use maud::{html, Markup};
use serde_json::json;
use uuid::Uuid;

use super::{back, html, notice};
use crate::console::{
    audit,
    filter::{self, Filters},
    layout, require_admin,
    session::may_act,
    Error, Page,
};
use crate::{auth::Principal, AppState};

/// Rows per page.
const PAGE: i64 = 50;
/// Tasks a bulk action reads and acts on per round.
const BATCH: i64 = 500;

fn form(f: &Filters) -> Markup {
    let opt = |field: &str, value: &str| {
        html! { option value=(value) selected[f.get(field) == value] { (if value.is_empty() { "any" } else { value }) } }
    };
    html! {
        form.filters method="get" action="/console/tasks" id="filters" {
            label { "Queue" select name="queue" { (opt("queue", "")) @for q in jobs::queues::ALL { (opt("queue", q)) } } }
            label { "Kind" input name="kind" value=(f.get("kind")) size="14"; }
            label { "Status" select name="status" { (opt("status", "")) @for s in TaskStatus::ALL { (opt("status", s.as_str())) } } }
            label { "Requester" input name="requester" value=(f.get("requester")) size="12"; }
            label { "Created from (UTC)" input type="datetime-local" name="createdFrom" value=(f.get("createdFrom")); }
            label { "to" input type="datetime-local" name="createdTo" value=(f.get("createdTo")); }
            label { "Finished from" input type="datetime-local" name="finishedFrom" value=(f.get("finishedFrom")); }
            label { "to" input type="datetime-local" name="finishedTo" value=(f.get("finishedTo")); }
            label { "Search (path=value or JSON)" input.search name="search" id="search" value=(f.get("search")) placeholder="organizerId=org_demo"; }
            label { "in" select name="in" { (opt("in", "params")) (opt("in", "result")) (opt("in", "either")) } }
            button type="submit" id="apply" { "Filter" }
            a href="/console/tasks" { "clear" }
        }
    }
}

pub async fn page(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
) -> Page {
    let f = filter::parse(&q)?;
    let before = match q.get("before").filter(|s| !s.is_empty()) {
        Some(b) => {
            Some(Uuid::parse_str(b).map_err(|_| Error::field("before", "must be a task id"))?)
        }
        None => None,
    };
    let (rows, more) = browse::page(&state.pool, &f.filter, before, PAGE).await?;
    let query = f.query();
    let sep = if query.is_empty() { "" } else { "&" };
    let admin = may_act(&who);
    Ok(html(layout::page(
        "Tasks",
        Some(&who),
        html! {
            (notice(&q))
            @if f.windowed {
                p.warning id="windowed" {
                    "A search in results covers the last " (filter::RESULT_SEARCH_WINDOW_HOURS)
                    " hours unless you set a creation window (results are not indexed)."
                }
            }
            (form(&f))
            @if admin {
                div.bulk id="bulk" {
                    "On everything matching this filter: "
                    @for action in ["retry", "cancel", "delete"] {
                        a id={ "bulk-" (action) } href={ "/console/tasks/bulk?action=" (action) (sep) (query) } { (action) }
                        " "
                    }
                }
            }
            table id="tasks" {
                tr { th { "Created" } th { "Kind" } th { "Queue" } th { "Status" } th { "Requester" } th.num { "Attempts" } th { "Finished" } th { "Params" } }
                @for r in &rows {
                    tr.task data-id=(r.id) {
                        td { a href={ "/console/tasks/" (r.id) } { (layout::when(r.created_at)) } }
                        td { (r.kind) } td { (r.queue) }
                        td { (layout::status(crate::routes::tasks::shown_status(r))) }
                        td { (r.requester) }
                        td.num { (r.attempts) "/" (r.max_attempts) }
                        td { (layout::when_opt(r.finished_at)) }
                        td { code { (preview(&r.params)) } }
                    }
                }
            }
            @if rows.is_empty() { p.muted id="empty" { "No task matches." } }
            div.pager {
                @if before.is_some() { a href={ "/console/tasks" @if !query.is_empty() { "?" (query) } } { "« newest" } }
                @if more {
                    @if let Some(last) = rows.last() {
                        a id="next" href={ "/console/tasks?before=" (last.id) (sep) (query) } { "older »" }
                    }
                }
            }
        },
    )))
}

/// The first characters of a task's params.
fn preview(v: &serde_json::Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 120 {
        format!("{}…", s.chars().take(120).collect::<String>())
    } else {
        s
    }
}

/// The statuses an action applies to.
fn acts_on(action: &str) -> Result<Vec<TaskStatus>, Error> {
    use TaskStatus::*;
    Ok(match action {
        "retry" => vec![Failed, Dead],
        "cancel" => vec![Pending, Retrying, Running],
        "delete" => vec![Pending, Completed, Failed, Cancelled, Retrying, Dead],
        _ => return Err(Error::field("action", "must be retry, cancel or delete")),
    })
}

/// The filter narrowed to what `action` can touch; `None` when nothing can match.
fn narrowed(f: &Filters, action: &str) -> Result<Option<browse::TaskFilter>, Error> {
    let allowed = acts_on(action)?;
    let mut filter = f.filter.clone();
    filter.statuses = if filter.statuses.is_empty() {
        allowed
    } else {
        filter
            .statuses
            .iter()
            .copied()
            .filter(|s| allowed.contains(s))
            .collect()
    };
    Ok((!filter.statuses.is_empty()).then_some(filter))
}

pub async fn confirm_bulk(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
) -> Page {
    require_admin(&who)?;
    let f = filter::parse(&q)?;
    let action = q.get("action").map(String::as_str).unwrap_or("");
    let count = match narrowed(&f, action)? {
        Some(filter) => browse::count(&state.pool, &filter).await?,
        None => 0,
    };
    let query = f.query();
    Ok(html(layout::page(
        "Confirm a bulk action",
        Some(&who),
        html! {
            p.warning id="confirm-text" data-count=(count) {
                "This will " strong { (action) } " " strong id="count" { (count) } " task(s): every task matching the filter "
                @if f.is_empty() { strong { "(no filter: all tasks)" } } @else { code { (query) } }
                " that can be " (action) "-ed now."
            }
            form method="post" action="/console/tasks/bulk" {
                @for field in filter::FIELDS {
                    @if !f.get(field).is_empty() { input type="hidden" name=(field) value=(f.get(field)); }
                }
                input type="hidden" name="action" value=(action);
                input type="hidden" name="expected" value=(count);
                button.danger type="submit" id="confirm" disabled[count == 0] { "Yes, " (action) " " (count) " task(s)" }
                " " a href={ "/console/tasks" @if !query.is_empty() { "?" (query) } } { "Cancel" }
            }
        },
    )))
}

pub async fn bulk(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Form(q): Form<HashMap<String, String>>,
) -> Page {
    require_admin(&who)?;
    let f = filter::parse(&q)?;
    let action = q.get("action").map(String::as_str).unwrap_or("");
    let Some(filter) = narrowed(&f, action)? else {
        return Ok(back(
            "/console/tasks",
            &format!("{action}: nothing matched"),
        ));
    };
    let expected: Option<i64> = q.get("expected").and_then(|v| v.parse().ok());
    let detail = json!({ "bulk": f.query(), "expected": expected });
    let mut before = None;
    let (mut done, mut refused) = (0usize, 0usize);
    loop {
        let ids = browse::ids(&state.pool, &filter, before, BATCH).await?;
        let Some(last) = ids.last().copied() else {
            break;
        };
        before = Some(last);
        let mut acted = Vec::with_capacity(ids.len());
        for id in ids {
            let ok = match action {
                "retry" => engine::actions::redrive(
                    &state.pool,
                    &state.hooks,
                    id,
                    state.config.core.task_ttl,
                )
                .await?
                .is_some(),
                "cancel" => matches!(
                    engine::actions::cancel(&state.pool, &state.hooks, id, None).await?,
                    engine::actions::CancelOutcome::Cancelled(_)
                        | engine::actions::CancelOutcome::Requested(_)
                ),
                _ => store::delete(&state.pool, id).await?,
            };
            if ok {
                acted.push(id);
            } else {
                refused += 1;
            }
        }
        done += acted.len();
        if action != "delete" {
            state.notifier.changed(&acted);
        }
        audit::record_many(&state.pool, &who, action, &acted, "done", &detail).await;
    }
    let query = f.query();
    let to = if query.is_empty() {
        "/console/tasks".to_string()
    } else {
        format!("/console/tasks?{query}")
    };
    Ok(back(
        &to,
        &format!("{action}: {done} task(s) done, {refused} no longer applicable"),
    ))
}
