//! `/console/schedules`: every durable schedule with its next and last runs; pause, resume
//! and run now (the same engine calls as `PATCH /admin/schedules/{id}` and `POST
//! /admin/schedules/{id}/run`).

use std::collections::HashMap;

use axum::{
    extract::{Path, Query, State},
    Extension,
};
use engine::schedule::{store, SchedulePatch};
use maud::html;
use serde_json::json;

use super::{back, html, notice};
use crate::console::{audit, layout, require_admin, session::may_act, Error, Page};
use crate::{auth::Principal, request_id, AppState};

pub async fn page(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
) -> Page {
    let list = store::list(&state.pool).await?;
    let admin = may_act(&who);
    Ok(html(layout::page(
        "Schedules",
        Some(&who),
        html! {
            (notice(&q))
            @if list.is_empty() { p.muted { "No schedule is configured." } }
            @else {
                table id="schedules" {
                    tr { th { "Schedule" } th { "Kind" } th { "Cadence" } th { "State" } th { "Next run" } th { "Last run" } @if admin { th { "Actions" } } }
                    @for s in &list {
                        tr id={ "schedule-" (s.id) } {
                            td { (s.id) }
                            td { (s.kind) }
                            td {
                                @if let Some(c) = &s.cron { code { (c) } " " (s.time_zone) }
                                @if let Some(i) = s.interval_seconds { "every " (layout::duration(i as f64)) }
                            }
                            td { (layout::status(if s.paused { "paused" } else { "running" })) }
                            td { (layout::when(s.next_run_at)) }
                            td {
                                @if let Some(id) = s.last_run.task_id {
                                    a href={ "/console/tasks/" (id) } { (layout::when_opt(s.last_run.at)) }
                                    " " @if let Some(st) = s.last_run.status { (layout::status(st.as_str())) }
                                } @else { span.muted { "never" } }
                            }
                            @if admin {
                                td {
                                    @if s.paused {
                                        (layout::action_button(&format!("/console/schedules/{}/resume", s.id), "Resume", &format!("resume-schedule-{}", s.id)))
                                    } @else {
                                        (layout::action_button(&format!("/console/schedules/{}/pause", s.id), "Pause", &format!("pause-schedule-{}", s.id)))
                                    }
                                    " " (layout::action_button(&format!("/console/schedules/{}/run", s.id), "Run now", &format!("run-schedule-{}", s.id)))
                                }
                            }
                        }
                    }
                }
            }
        },
    )))
}

pub async fn act(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path((id, action)): Path<(String, String)>,
) -> Page {
    require_admin(&who)?;
    let no_schedule = || Error::not_found(format!("no schedule {id:?}"));
    let (outcome, task) = match action.as_str() {
        "pause" | "resume" => {
            let patch = SchedulePatch {
                paused: Some(action == "pause"),
                ..SchedulePatch::default()
            };
            match store::update(&state.pool, &id, &patch, chrono::Utc::now()).await {
                Ok(_) => ("done".to_string(), None),
                Err(store::PatchError::NotFound(_)) => return Err(no_schedule()),
                Err(store::PatchError::Invalid(e)) => {
                    return Err(Error::field(e.field, &e.message))
                }
                Err(store::PatchError::Db(e)) => return Err(e.into()),
            }
        }
        "run" => {
            let rid = request_id::current();
            let run = state
                .schedules
                .run_now(&id, &who.requester, None, Some(&rid))
                .await?
                .ok_or_else(no_schedule)?
                .map_err(|e| Error::new(axum::http::StatusCode::CONFLICT, e.to_string()))?;
            match run {
                engine::enqueue::Enqueued::Created(rec)
                | engine::enqueue::Enqueued::Replayed(rec)
                | engine::enqueue::Enqueued::Conflict(rec) => {
                    (format!("task {}", rec.id), Some(rec.id))
                }
            }
        }
        _ => return Err(Error::not_found(format!("no schedule action {action:?}"))),
    };
    audit::record(
        &state.pool,
        audit::Action {
            actor: &who,
            action: &action,
            target: format!("schedule:{id}"),
            task,
            outcome: &outcome,
            detail: json!({}),
        },
    )
    .await;
    Ok(back(
        "/console/schedules",
        &format!("schedule {id}: {action} — {outcome}"),
    ))
}
