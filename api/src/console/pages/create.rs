//! `/console/new`: create a task by hand for the maintenance kinds (the console's "run
//! now" for work that is otherwise scheduled): KPI refresh, retention cleanup, the ping
//! probe. Their params only say where they came from.

use std::collections::HashMap;

use axum::{
    extract::{Query, State},
    http::StatusCode,
    Extension, Form,
};
use engine::{
    enqueue::{Enqueued, Request},
    KindInfo,
};
use jobs::kinds::{kpi_refresh::KpiRefresh, ping::Ping, task_cleanup::TaskCleanup};
use maud::html;
use serde::Deserialize;
use serde_json::json;

use super::{back, html, notice};
use crate::console::{audit, layout, require_admin, Error, Page};
use crate::{auth::Principal, request_id, AppState};

/// The kinds an operator may create here, with what they do.
const MAINTENANCE: [(KindInfo, &str); 3] = [
    (
        KindInfo::of::<KpiRefresh>(),
        "Refresh the director's KPI views and warm the report cache",
    ),
    (
        KindInfo::of::<TaskCleanup>(),
        "Retention: delete expired tasks, their files, orphan uploads and stale worker registrations",
    ),
    (
        KindInfo::of::<Ping>(),
        "End-to-end probe: a maintenance worker measures Postgres and Redis",
    ),
];

pub async fn page(
    Extension(who): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
) -> Page {
    require_admin(&who)?;
    Ok(html(layout::page(
        "Run a maintenance task",
        Some(&who),
        html! {
            (notice(&q))
            table id="maintenance" {
                tr { th { "Kind" } th { "What it does" } th { "" } }
                @for (k, what) in MAINTENANCE {
                    tr {
                        td { code { (k.name) } }
                        td { (what) }
                        td {
                            form.inline method="post" action="/console/new" {
                                input type="hidden" name="kind" value=(k.name);
                                button type="submit" id={ "run-" (k.name) } { "Run now" }
                            }
                        }
                    }
                }
            }
        },
    )))
}

#[derive(Deserialize)]
pub struct NewTask {
    #[serde(default)]
    kind: String,
}

pub async fn submit(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Form(form): Form<NewTask>,
) -> Page {
    require_admin(&who)?;
    let Some((kind, _)) = MAINTENANCE.iter().find(|(k, _)| k.name == form.kind) else {
        return Err(Error::field(
            "kind",
            "must be one of the maintenance kinds: kpi_refresh, task_cleanup, ping",
        ));
    };
    let rid = request_id::current();
    let outcome = state
        .enqueuer
        .enqueue(Request {
            kind: *kind,
            params: json!({ "trigger": "console" }),
            requester: &who.requester,
            idempotency_key: None,
            request_id: Some(&rid),
            run_at: None,
        })
        .await?;
    let rec = match outcome {
        Enqueued::Created(rec) => rec,
        Enqueued::Replayed(_) | Enqueued::Conflict(_) => {
            return Err(Error::new(StatusCode::CONFLICT, "the task was not created"))
        }
    };
    audit::record(
        &state.pool,
        audit::Action {
            actor: &who,
            action: "create",
            target: format!("task:{}", rec.id),
            task: Some(rec.id),
            outcome: "done",
            detail: json!({ "kind": kind.name }),
        },
    )
    .await;
    Ok(back(
        &format!("/console/tasks/{}", rec.id),
        &format!("{} created", kind.name),
    ))
}
