//! Operator routes for the durable schedules (issue 13): list them with their next and last
//! runs, pause, resume or change one, run one now.

use axum::{
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use engine::schedule::{store, CatchUp, SchedulePatch};
use serde_json::json;

use super::admin::{require_admin, require_observer};
use crate::openapi::{
    bodies,
    params::{IdempotencyKey, ScheduleId},
    replies::{ScheduleList, ScheduleView},
    responses::*,
};
use crate::{auth::Principal, body::JsonObject, error::ApiError, request_id, AppState};

fn no_schedule(id: &str) -> ApiError {
    ApiError::not_found(format!("no schedule {id:?}"))
}

/// `GET /admin/schedules`: every schedule, with its next run and its last one.
#[utoipa::path(get, path = "/admin/schedules", tag = "operators",
    summary = "Schedules, with their next and last runs (admin or operator)",
    responses((status = 200, description = "`{data: [schedule], requestId}`", body = ScheduleList),
        Unauthorized, OutOfScope, PostgresDown, TooLarge))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Response, ApiError> {
    require_observer(&principal)?;
    let data = store::list(&state.pool).await?;
    Ok(Json(json!({ "data": data, "requestId": request_id::current() })).into_response())
}

/// `PATCH /admin/schedules/{id}` `{paused?, cron?, intervalSeconds?, timeZone?, catchUp?,
/// maxCatchUp?}`: an operator's change, kept across restarts until the configuration itself
/// changes. A new cadence or a resume starts at the next tick after now.
#[utoipa::path(patch, path = "/admin/schedules/{id}", tag = "operators",
    summary = "Pause, resume or change a schedule (admin)",
    params(ScheduleId), request_body = bodies::SchedulePatchRequest,
    responses((status = 200, description = "The schedule as it is now", body = ScheduleView),
        (status = 404, description = "No such schedule", body = ErrorBody),
        Invalid, Unauthorized, NotAdmin, NotJson, PostgresDown, TooLarge))]
pub async fn update(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    mut body: JsonObject,
) -> Result<Response, ApiError> {
    require_admin(&principal)?;
    let paused = body.optional_bool("paused");
    let cron = body.optional_str("cron", |s| {
        (s.trim().is_empty() || s.len() > 200)
            .then_some("must be a cron expression of 1 to 200 characters")
    });
    let interval = body.optional_int(
        "intervalSeconds",
        1,
        engine::schedule::cadence::MAX_INTERVAL_SECONDS,
    );
    let time_zone = body.optional_str("timeZone", |s| {
        (s.is_empty() || s.len() > 64).then_some("must be an IANA time zone name")
    });
    let catch_up = body
        .optional_enum("catchUp", &["skip", "all"])
        .and_then(|s| CatchUp::parse(&s));
    let max_catch_up = body.optional_int("maxCatchUp", 1, 1000);
    body.finish()?;
    let patch = SchedulePatch {
        paused,
        cron,
        interval_seconds: interval,
        time_zone,
        catch_up,
        max_catch_up: max_catch_up.map(|m| m as i32),
    };
    match store::update(&state.pool, &id, &patch, chrono::Utc::now()).await {
        Ok(schedule) => {
            tracing::info!(schedule = %id, operator = %principal.requester, ?patch, "schedule changed");
            Ok(Json(schedule).into_response())
        }
        Err(store::PatchError::NotFound(_)) => Err(no_schedule(&id)),
        Err(store::PatchError::Invalid(e)) => Err(ApiError::field(
            StatusCode::BAD_REQUEST,
            "validation_failed",
            e.field,
            &e.message,
        )),
        Err(store::PatchError::Db(e)) => Err(e.into()),
    }
}

/// `POST /admin/schedules/{id}/run`: one task of the schedule now, outside its cadence.
#[utoipa::path(post, path = "/admin/schedules/{id}/run", tag = "operators",
    summary = "Run a schedule's task now, once (admin)",
    params(ScheduleId, IdempotencyKey),
    responses(TaskAccepted,
        (status = 404, description = "No such schedule", body = ErrorBody),
        (status = 409, description = "The schedule's kind is not registered in this version", body = ErrorBody),
        IdempotencyConflict, Invalid, Unauthorized, NotAdmin, PostgresDown, TooLarge))]
pub async fn run_now(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_admin(&principal)?;
    let key = super::idempotency_key(&headers)?;
    let request_id = request_id::current();
    let outcome = state
        .schedules
        .run_now(&id, &principal.requester, key.as_deref(), Some(&request_id))
        .await?
        .ok_or_else(|| no_schedule(&id))?
        .map_err(|e| ApiError::new(StatusCode::CONFLICT, "unknown_kind", e.to_string()))?;
    super::answer_enqueued(outcome, &principal)
}
