//! Liveness and readiness.

use std::time::Duration;

use axum::{extract::State, http::StatusCode, response::IntoResponse, Json};
use serde_json::json;

use crate::openapi::{
    replies::{Health, Readiness},
    responses::TooLarge,
};
use crate::{request_id, AppState};

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "ops", summary = "Liveness", security(()),
    responses((status = 200, description = "ok", body = Health), TooLarge))]
pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok", "requestId": request_id::current() }))
}

/// Ready when Postgres answers. Redis down is reported but does not make the api unready:
/// tasks are still accepted and the relay pushes them once Redis is back.
#[utoipa::path(get, path = "/readyz", tag = "ops",
    summary = "Readiness (Postgres required; Redis reported)", security(()),
    responses(
        (status = 200, description = "ready", body = Readiness),
        (status = 503, description = "not ready", body = Readiness),
        TooLarge))]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let postgres = tokio::time::timeout(
        Duration::from_secs(2),
        sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&state.pool),
    )
    .await
    .map(|r| r.is_ok())
    .unwrap_or(false);
    let mut conn = state.redis.clone();
    let redis = tokio::time::timeout(
        Duration::from_secs(2),
        redis::cmd("PING").query_async::<String>(&mut conn),
    )
    .await
    .map(|r| r.is_ok())
    .unwrap_or(false);
    let status = match (postgres, redis) {
        (true, true) => "ready",
        (true, false) => "degraded",
        _ => "unavailable",
    };
    let code = if postgres {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let up = |ok: bool| if ok { "up" } else { "down" };
    (
        code,
        Json(json!({
            "status": status,
            "checks": { "postgres": up(postgres), "redis": up(redis) },
            "requestId": request_id::current(),
        })),
    )
}
