//! `/console/new`: create a task by hand for the maintenance kinds (the console's "run
//! now" for work that is otherwise scheduled): KPI refresh, retention cleanup, the landing
//! lifecycle (or its dry run), the ping probe. Their params say where they came from (and,
//! for the dry run, `dryRun`).

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
use jobs::kinds::{
    kpi_refresh::KpiRefresh, landing_ttl::LandingTtl, ping::Ping, task_cleanup::TaskCleanup,
};
use maud::html;
use serde::Deserialize;
use serde_json::json;

use super::{back, html, notice};
use crate::console::{audit, layout, require_admin, Error, Page};
use crate::{auth::Principal, request_id, AppState};

/// What an operator may create here: a choice, its kind, whether it is a dry run, and what
/// it does.
struct Choice {
    id: &'static str,
    kind: KindInfo,
    dry_run: bool,
    what: &'static str,
}

const MAINTENANCE: [Choice; 5] = [
    Choice {
        id: "kpi_refresh",
        kind: KindInfo::of::<KpiRefresh>(),
        dry_run: false,
        what: "Refresh the director's KPI views and warm the report cache",
    },
    Choice {
        id: "task_cleanup",
        kind: KindInfo::of::<TaskCleanup>(),
        dry_run: false,
        what: "Retention: delete expired tasks, their files, orphan uploads and stale worker registrations",
    },
    Choice {
        id: "landing_ttl",
        kind: KindInfo::of::<LandingTtl>(),
        dry_run: false,
        what: "Landing lifecycle: archive and expire events past their TTL, drop their caches",
    },
    Choice {
        id: "landing_ttl_dry_run",
        kind: KindInfo::of::<LandingTtl>(),
        dry_run: true,
        what: "Landing lifecycle, dry run: report what would move, change nothing",
    },
    Choice {
        id: "ping",
        kind: KindInfo::of::<Ping>(),
        dry_run: false,
        what: "End-to-end probe: a maintenance worker measures Postgres and Redis",
    },
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
                @for c in &MAINTENANCE {
                    tr {
                        td { code { (c.kind.name) } @if c.dry_run { " (dry run)" } }
                        td { (c.what) }
                        td {
                            form.inline method="post" action="/console/new" {
                                input type="hidden" name="kind" value=(c.id);
                                button type="submit" id={ "run-" (c.id) } { "Run now" }
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
    let Some(choice) = MAINTENANCE.iter().find(|c| c.id == form.kind) else {
        return Err(Error::field(
            "kind",
            "must be one of kpi_refresh, task_cleanup, landing_ttl, landing_ttl_dry_run, ping",
        ));
    };
    let kind = &choice.kind;
    let mut params = json!({ "trigger": "console" });
    if choice.dry_run {
        params["dryRun"] = json!(true);
    }
    let rid = request_id::current();
    let outcome = state
        .enqueuer
        .enqueue(Request {
            kind: *kind,
            params,
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
            detail: json!({ "kind": kind.name, "dryRun": choice.dry_run }),
        },
    )
    .await;
    Ok(back(
        &format!("/console/tasks/{}", rec.id),
        &format!("{} created", kind.name),
    ))
}
