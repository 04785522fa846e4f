//! `/console/workers`: every worker process (its apalis registrations), its queues with
//! their concurrency, the tasks it runs, its last heartbeat. Registrations older than a day
//! are not listed; one whose heartbeat is past the timeout shows as not alive until the
//! retention job removes it.

use axum::{extract::State, Extension};
use maud::html;

use super::html;
use crate::console::{layout, Error, Page};
use crate::{auth::Principal, AppState};

pub async fn page(State(state): State<AppState>, Extension(who): Extension<Principal>) -> Page {
    let rows = crate::routes::admin::worker_rows(&state)
        .await
        .map_err(|_| {
            Error::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "Redis or Postgres did not answer",
            )
        })?;
    let time = |v: &serde_json::Value| {
        v.as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
    };
    Ok(html(layout::page(
        "Workers",
        Some(&who),
        html! {
            @if rows.is_empty() { p.muted id="no-workers" { "No worker has registered in the last day." } }
            @else {
                table id="workers" {
                    tr { th { "Worker" } th { "Alive" } th { "Queues (concurrency)" } th.num { "Running" } th { "By kind" } th { "Last heartbeat" } }
                    @for w in &rows {
                        tr {
                            td { (w["worker"].as_str().unwrap_or("")) }
                            td { (layout::status(if w["alive"] == true { "up" } else { "down" })) }
                            td {
                                @for q in w["queues"].as_array().into_iter().flatten() {
                                    span { (q["queue"].as_str().unwrap_or("")) " (" (q["concurrency"].as_i64().map(|c| c.to_string()).unwrap_or_else(|| "?".into())) ") " }
                                }
                            }
                            td.num { (w["running"].as_i64().unwrap_or(0)) }
                            td {
                                @for (kind, n) in w["runningByKind"].as_object().into_iter().flatten() {
                                    span { (kind) ": " (n.as_i64().unwrap_or(0)) " " }
                                }
                            }
                            td { (layout::when_opt(time(&w["lastSeenAt"]))) }
                        }
                    }
                }
            }
        },
    )))
}
