//! Queue actions: pause and resume (the engine's queue pause, as `POST
//! /admin/queues/{queue}/pause|resume`), and re-drive every dead task of a kind.

use axum::{
    extract::{Path, State},
    response::Response,
    Extension,
};
use engine::TaskStatus;
use serde_json::json;

use super::back;
use crate::console::{audit, require_admin, Error, Page};
use crate::{auth::Principal, AppState};

pub async fn act(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path((queue, action)): Path<(String, String)>,
) -> Page {
    require_admin(&who)?;
    if !jobs::queues::ALL.contains(&queue.as_str()) {
        return Err(Error::not_found(format!("no queue {queue:?}")));
    }
    let changed = match action.as_str() {
        "pause" => engine::transport::pause::pause(&state.pool, &queue, &who.requester).await?,
        "resume" => engine::transport::pause::resume(&state.pool, &queue).await?,
        _ => return Err(Error::not_found(format!("no queue action {action:?}"))),
    };
    let outcome = if changed { "done" } else { "unchanged" };
    audit::record(
        &state.pool,
        audit::Action {
            actor: &who,
            action: &action,
            target: format!("queue:{queue}"),
            task: None,
            outcome,
            detail: json!({}),
        },
    )
    .await;
    Ok(back(
        "/console",
        &format!("queue {queue}: {action} {outcome}"),
    ))
}

pub async fn redrive_kind(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(kind): Path<String>,
) -> Result<Response, Error> {
    require_admin(&who)?;
    if let Some(p) = jobs::kinds::assignment::id_problem(&kind) {
        return Err(Error::field("kind", p));
    }
    let ids = engine::actions::redrive_all(
        &state.pool,
        &state.hooks,
        TaskStatus::Dead,
        Some(&kind),
        state.config.core.task_ttl,
    )
    .await?;
    state.notifier.changed(&ids);
    audit::record_many(
        &state.pool,
        &who,
        "redrive",
        &ids,
        "done",
        &json!({ "bulk": format!("dead of kind {kind}") }),
    )
    .await;
    Ok(back(
        "/console",
        &format!("re-drove {} dead {kind} task(s)", ids.len()),
    ))
}
