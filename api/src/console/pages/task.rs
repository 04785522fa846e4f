//! `/console/tasks/{id}`: one task — params, result, progress and stage, every recorded
//! attempt error, a timeline (created, due, each failed attempt and its `retry_at`, the last
//! claim, finished, and the console actions taken on it), the worker, its links — live
//! while it runs; and its actions: retry (re-drive), cancel, delete.

use std::collections::HashMap;

use axum::{
    extract::{Path, Query, State},
    Extension,
};
use chrono::{DateTime, Utc};
use engine::{actions::CancelOutcome, store, TaskRecord, TaskStatus};
use maud::{html, Markup};
use serde_json::{json, Value};
use uuid::Uuid;

use super::{back, html, notice};
use crate::console::{audit, layout, require_admin, session::may_act, Error, Page};
use crate::{auth::Principal, AppState};

fn parse_id(raw: &str) -> Result<Uuid, Error> {
    Uuid::parse_str(raw).map_err(|_| Error::not_found(format!("no task with id {raw:?}")))
}

async fn load(state: &AppState, id: Uuid) -> Result<TaskRecord, Error> {
    store::get(&state.pool, id, None)
        .await?
        .ok_or_else(|| Error::not_found(format!("no task with id {id}")))
}

pub async fn page(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Page {
    let id = parse_id(&id)?;
    let rec = load(&state, id).await?;
    let body = fragment(&state, &who, &rec).await?;
    Ok(html(layout::page(
        &format!("Task {}", rec.kind),
        Some(&who),
        html! {
            (notice(&q))
            p.muted { code id="task-id" { (rec.id) } }
            div id="live" data-live={ "/console/live/tasks/" (rec.id) } data-every="2000" { (body) }
        },
    )))
}

pub async fn live(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Page {
    let rec = load(&state, parse_id(&id)?).await?;
    Ok(html(fragment(&state, &who, &rec).await?))
}

/// Links worth following from a result: a download `url`, and the task's own api routes.
fn links(rec: &TaskRecord) -> Markup {
    let download = rec
        .result
        .as_ref()
        .and_then(|r| r.get("url"))
        .and_then(Value::as_str)
        .filter(|u| u.starts_with('/') || u.starts_with("https://") || u.starts_with("http://"));
    html! {
        ul id="links" {
            @if let Some(u) = download { li { a id="download" href=(u) { "Download (" (rec.kind) ")" } } }
            li { "API: " code { "GET /tasks/" (rec.id) } " (the requester's view)" }
        }
    }
}

fn timeline(rec: &TaskRecord, actions: &[audit::Recorded]) -> Markup {
    let mut items: Vec<(DateTime<Utc>, String)> = vec![(rec.created_at, "created".into())];
    if rec.run_at > rec.created_at + chrono::Duration::seconds(1) && rec.attempts == 0 {
        items.push((rec.run_at, "due".into()));
    }
    for e in rec.errors.as_array().into_iter().flatten() {
        let at = e["at"]
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok());
        if let Some(at) = at {
            let mut text = format!(
                "attempt {} failed: {}",
                e["attempt"].as_i64().unwrap_or(0),
                e["code"].as_str().unwrap_or("error")
            );
            if let Some(r) = e["retryAt"].as_str() {
                text.push_str(&format!(" — retry at {r}"));
            }
            items.push((at.with_timezone(&Utc), text));
        }
    }
    if let Some(s) = rec.started_at {
        items.push((s, format!("attempt {} claimed", rec.attempts)));
    }
    if let Some(f) = rec.finished_at {
        items.push((f, format!("finished {}", rec.status)));
    }
    for a in actions {
        items.push((a.at, format!("{} by {} ({})", a.action, a.actor, a.outcome)));
    }
    items.sort_by_key(|(t, _)| *t);
    html! {
        ol.timeline id="timeline" {
            @for (t, text) in &items { li { (layout::when(*t)) " — " (text) } }
        }
    }
}

async fn fragment(state: &AppState, who: &Principal, rec: &TaskRecord) -> Result<Markup, Error> {
    let status = rec.status();
    let live = if status == TaskStatus::Running {
        state.progress.read(rec.id).await.ok().flatten()
    } else {
        None
    };
    let (progress, stage) = match &live {
        Some(l) if l.progress >= rec.progress => {
            (l.progress, l.stage.clone().or(rec.stage.clone()))
        }
        _ => (rec.progress, rec.stage.clone()),
    };
    let worker = engine::browse::worker_of(&state.pool, rec.id).await?;
    let actions = audit::of_task(&state.pool, rec.id).await?;
    let admin = may_act(who);
    let id = rec.id;
    Ok(html! {
        table id="summary" {
            tr { th { "Status" } td id="status" data-status=(status.as_str()) { (layout::status(crate::routes::tasks::shown_status(rec))) @if rec.cancel_requested && !status.is_terminal() { " (cancel requested)" } } }
            tr { th { "Kind / queue" } td { (rec.kind) " / " (rec.queue) } }
            tr { th { "Requester" } td { (rec.requester) } }
            tr { th { "Attempts" } td { (rec.attempts) " of " (rec.max_attempts) } }
            tr { th { "Progress" } td { progress max="100" value=(progress) {} " " (progress) "%" @if let Some(s) = &stage { " · " span id="stage" { (s) } } @if let Some(m) = live.as_ref().and_then(|l| l.message.as_ref()) { " · " (m) } } }
            tr { th { "Worker" } td id="worker" { (worker.as_deref().unwrap_or("—")) } }
            tr { th { "Expires" } td { (layout::when_opt(rec.expires_at)) } }
        }
        @if admin {
            div.bulk id="actions" {
                @if matches!(status, TaskStatus::Failed | TaskStatus::Dead) {
                    (layout::action_button(&format!("/console/tasks/{id}/retry"), "Retry", "retry"))
                }
                @if matches!(status, TaskStatus::Pending | TaskStatus::Retrying | TaskStatus::Running) && !rec.cancel_requested {
                    (layout::action_button(&format!("/console/tasks/{id}/cancel"), "Cancel", "cancel"))
                }
                @if status != TaskStatus::Running {
                    form.inline method="post" action={ "/console/tasks/" (id) "/delete" } {
                        button.danger type="submit" id="delete" { "Delete" }
                    }
                }
            }
        }
        div.grid {
            div { h2 { "Params" } (layout::json(&rec.params)) }
            div { h2 { "Result" } @if let Some(r) = &rec.result { (layout::json(r)) } @else { p.muted { "none yet" } } }
        }
        @if let Some(e) = &rec.error { h2 { "Last error" } div id="error-last" { (layout::json(e)) } }
        h2 { "Attempt errors (newest " (engine::store::ERROR_HISTORY) ")" }
        @if rec.errors.as_array().is_none_or(|a| a.is_empty()) { p.muted { "none" } }
        @else {
            table id="errors" {
                tr { th { "Attempt" } th { "Code" } th { "Message" } th { "At" } th { "Retry at" } }
                @for e in rec.errors.as_array().into_iter().flatten() {
                    tr {
                        td { (e["attempt"]) } td { (e["code"].as_str().unwrap_or("")) } td { (e["message"].as_str().unwrap_or("")) }
                        td { (e["at"].as_str().unwrap_or("")) } td { (e["retryAt"].as_str().unwrap_or("—")) }
                    }
                }
            }
        }
        h2 { "Timeline" } (timeline(rec, &actions))
        h2 { "Links" } (links(rec))
    })
}

pub async fn act(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path((id, action)): Path<(String, String)>,
) -> Page {
    require_admin(&who)?;
    let id = parse_id(&id)?;
    let outcome = match action.as_str() {
        "retry" => {
            match engine::actions::redrive(
                &state.pool,
                &state.hooks,
                id,
                state.config.core.task_ttl,
            )
            .await?
            {
                Some(_) => {
                    state.notifier.changed(&[id]);
                    "re-driven".to_string()
                }
                None => format!(
                    "refused: task is {}, only failed or dead tasks can be retried",
                    load(&state, id).await?.status
                ),
            }
        }
        "cancel" => match engine::actions::cancel(&state.pool, &state.hooks, id, None).await? {
            CancelOutcome::Cancelled(_) => {
                state.notifier.changed(&[id]);
                "cancelled".into()
            }
            CancelOutcome::Requested(_) => "cancel requested (it stops at its next check)".into(),
            CancelOutcome::AlreadyFinished(r) => format!("refused: already {}", r.status),
            CancelOutcome::NotFound => {
                return Err(Error::not_found(format!("no task with id {id}")))
            }
        },
        "delete" => {
            if store::delete(&state.pool, id).await? {
                "deleted".into()
            } else {
                let rec = load(&state, id).await?;
                format!("refused: task is {}; cancel it first", rec.status)
            }
        }
        _ => return Err(Error::not_found(format!("no task action {action:?}"))),
    };
    audit::record(
        &state.pool,
        audit::Action {
            actor: &who,
            action: &action,
            target: format!("task:{id}"),
            task: Some(id),
            outcome: &outcome,
            detail: json!({}),
        },
    )
    .await;
    let to = if outcome == "deleted" {
        "/console/tasks".to_string()
    } else {
        format!("/console/tasks/{id}")
    };
    Ok(back(&to, &format!("{action}: {outcome}")))
}
