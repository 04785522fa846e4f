//! The HTTP facade: authenticate, validate, create tasks, and let clients follow them.
//! It never does the work itself; the worker does (DESIGN §1, §5).

pub mod access;
pub mod auth;
pub mod body;
pub mod config;
pub mod enqueue_table;
pub mod error;
pub mod events;
pub mod request_id;
pub mod routes;

use std::{sync::Arc, time::Duration};

use axum::{
    extract::{MatchedPath, Request},
    http::StatusCode,
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use engine::{
    enqueue::Enqueuer,
    kind::KindHooks,
    progress::{Notifier, ProgressStore},
    redis_conn::Keys,
    transport::MessageQueue,
};
use jobs::{
    domain::report_cache::ReportCache,
    storage::{local::LocalStore, Store},
};
use redis::aio::ConnectionManager;
use sqlx::PgPool;

pub use config::ApiConfig;
use error::ApiError;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub redis: ConnectionManager,
    pub enqueuer: Enqueuer,
    pub progress: ProgressStore,
    pub notifier: Notifier,
    pub report_cache: ReportCache,
    pub hub: events::EventHub,
    pub tokens: auth::Tokens,
    pub config: Arc<ApiConfig>,
    /// Every kind's hooks: a cancel or a re-drive here keeps the kind's rows in step.
    pub hooks: KindHooks,
    /// The per-queue task counts of `/metrics`, reused for `METRICS_CACHE_SECONDS`.
    pub queue_stats: Arc<routes::metrics::QueueStatsCache>,
    /// The local-disk export store whose signed links `GET /files/...` serves; `None` when
    /// exports go to S3 (or the directory is unusable, logged at start).
    pub local_files: Option<LocalStore>,
}

impl AppState {
    /// Builds the state on already open connections (tests use their own pool and prefix).
    pub fn new(config: ApiConfig, pool: PgPool, redis: ConnectionManager) -> Self {
        let core = &config.core;
        let keys = Keys::new(core.redis_prefix.clone());
        let queue = MessageQueue::new(redis.clone(), keys.clone(), core.queue_max_ready);
        Self {
            enqueuer: Enqueuer::new(pool.clone(), queue, core.task_ttl),
            progress: ProgressStore::new(redis.clone(), keys.clone(), core.task_ttl),
            notifier: Notifier::new(redis.clone(), keys.clone()),
            hub: events::EventHub::start(core.redis_url.clone(), keys.clone()),
            tokens: config.tokens.clone(),
            // `connect` (the binary's path) refuses duplicate kind names before this.
            hooks: jobs::kinds::registry()
                .expect("every kind has its own name")
                .hooks(),
            local_files: match Store::from_config(&core.exports) {
                Ok(Store::Local(local)) => Some(local),
                Ok(Store::S3(_)) => None,
                Err(e) => {
                    tracing::error!(error = %e, "local export store unavailable: /files links will fail");
                    None
                }
            },
            report_cache: ReportCache::new(redis.clone(), keys.clone()),
            queue_stats: Arc::new(routes::metrics::QueueStatsCache::new(
                config.security.metrics_cache_ttl,
            )),
            config: Arc::new(config),
            pool,
            redis,
        }
    }

    /// Connects, migrates and builds the state from configuration.
    pub async fn connect(config: ApiConfig) -> anyhow::Result<Self> {
        jobs::kinds::registry()?;
        let core = &config.core;
        // Short: a request never needs a long statement, and one that hangs must not hold a
        // connection of the pool.
        let statement_timeout = engine::db::statement_timeout_from_env(
            "DATABASE_STATEMENT_TIMEOUT_MS",
            engine::db::API_STATEMENT_TIMEOUT,
        )?;
        let pool = engine::db::connect(
            &core.database_url,
            core.database_max_connections,
            statement_timeout,
        )
        .await?;
        jobs::db::migrate(&pool).await?;
        let redis =
            engine::redis_conn::connect_with_retry(&core.redis_url, Duration::from_secs(60))
                .await?;
        Ok(Self::new(config, pool, redis))
    }
}

async fn not_found_route() -> ApiError {
    ApiError::not_found("no such route")
}

/// Every route refuses a body declared larger than `API_BODY_LIMIT_BYTES` with the JSON 413,
/// before authentication or any handler reads it (routes that read a body also stop a
/// chunked one at the limit: `body::JsonObject`, the webhook).
async fn limit_body(
    axum::extract::State(limit): axum::extract::State<usize>,
    req: Request,
    next: Next,
) -> Response {
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return payload_too_large(limit).into_response();
    }
    next.run(req).await
}

/// The 413 every route answers, as JSON.
pub fn payload_too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the body must be at most {limit} bytes"),
    )
}

/// Access log line per request, and JSON for the errors axum produces itself (405, and a
/// 413 from an extractor's own limit).
async fn access_log(
    axum::extract::State(body_limit): axum::extract::State<usize>,
    req: Request,
    next: Next,
) -> Response {
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let resp = if status == StatusCode::METHOD_NOT_ALLOWED && !is_json {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{method} is not allowed on {route}"),
        )
        .into_response()
    } else if status == StatusCode::PAYLOAD_TOO_LARGE && !is_json {
        payload_too_large(body_limit).into_response()
    } else {
        resp
    };
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    if status.is_server_error() {
        tracing::warn!(%method, %route, status = status.as_u16(), elapsed_ms, "request");
    } else {
        tracing::debug!(%method, %route, status = status.as_u16(), elapsed_ms, "request");
    }
    resp
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("handler panicked");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "internal error",
    )
    .into_response()
}

pub fn router(state: AppState) -> Router {
    use routes::{
        admin, deliveries, director, exports, files, health, metrics, openapi, reports, tasks,
        whatsapp,
    };
    let task_routes = |prefix: &str, r: Router<AppState>| {
        r.route(&format!("{prefix}/{{id}}"), get(tasks::get_task))
            .route(&format!("{prefix}/{{id}}/result"), get(tasks::get_result))
            .route(&format!("{prefix}/{{id}}/cancel"), post(tasks::cancel))
            .route(&format!("{prefix}/{{id}}/events"), get(tasks::events))
    };
    let r = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::metrics))
        .route("/openapi.json", get(openapi::document))
        .route("/director/assign", post(director::assign))
        .route("/director/payments", post(director::payment))
        .route("/director/organizers/{id}/ledger", get(reports::ledger))
        .route("/director/overview", get(reports::legacy_overview))
        .route("/director/reports/overview", get(reports::overview))
        .route(
            "/director/reports/top-organizers",
            get(reports::top_organizers),
        )
        .route("/director/reports/debt-aging", get(reports::debt_aging))
        .route(
            "/director/reports/tickets-usage",
            get(reports::tickets_usage),
        )
        .route("/director/kpis/refresh", post(reports::refresh_kpis))
        .route("/director/reports/exports", post(exports::create))
        .route("/files/{*key}", get(files::download))
        .route("/admin/queues", get(admin::queues))
        .route("/admin/workers", get(admin::workers))
        .route("/admin/tasks", get(admin::list))
        .route("/admin/tasks/retry", post(admin::retry_all))
        .route("/admin/tasks/{id}", axum::routing::delete(admin::delete))
        .route("/admin/tasks/{id}/retry", post(admin::retry_one))
        .route("/admin/ping", post(admin::ping))
        .route(
            "/events/{event_id}/guests/{guest_id}/send",
            post(deliveries::send),
        )
        .route("/events/{event_id}/deliveries", post(deliveries::bulk))
        .route("/wa/webhook", post(whatsapp::webhook))
        .route("/wa/session/{phone}", get(whatsapp::session));
    let r = task_routes("/tasks", r);
    let r = task_routes("/director/reports/tasks", r);
    let body_limit = state.config.body_limit;
    // Authorization sits on the routes (it needs the matched route), so an unknown path is
    // still a 404 and a wrong method a 405, not a 401.
    r.route_layer(middleware::from_fn_with_state(
        state.clone(),
        access::authorize,
    ))
    .fallback(not_found_route)
    .layer(axum::extract::DefaultBodyLimit::max(body_limit))
    .layer(middleware::from_fn_with_state(body_limit, limit_body))
    .layer(middleware::from_fn_with_state(body_limit, access_log))
    .layer(tower_http::catch_panic::CatchPanicLayer::custom(
        panic_response,
    ))
    .layer(middleware::from_fn(request_id::layer))
    .with_state(state)
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let bind = state.config.bind;
    let listener = tokio::net::TcpListener::bind(bind).await?;
    tracing::info!(%bind, "api listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
