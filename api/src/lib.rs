//! The HTTP facade: authenticate, validate, create tasks, and let clients follow them.
//! It never does the work itself; the worker does (DESIGN §1, §5).

pub mod access;
pub mod auth;
pub mod body;
pub mod config;
pub mod console;
pub mod enqueue_table;
pub mod error;
pub mod events;
pub mod openapi;
pub mod request_id;
pub mod routes;

use std::{sync::Arc, time::Duration};

use axum::{
    extract::{MatchedPath, Request},
    http::StatusCode,
    middleware::{self, Next},
    response::{IntoResponse, Response},
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
use utoipa::OpenApi as _;
use utoipa_axum::{router::OpenApiRouter, routes};

pub use config::ApiConfig;
use error::ApiError;

/// The api's shared state. Cheap to clone (one reference count): axum clones it for every
/// request, in the authorization layer and the extractors, and a clone of every field (key
/// prefixes, pools, the schedule ticker) cost allocations per request (measured: `AppState`
/// clone and drop among the api's top symbols under `scripts/bench/accept.sh`).
#[derive(Clone)]
pub struct AppState(Arc<AppStateInner>);

impl std::ops::Deref for AppState {
    type Target = AppStateInner;

    fn deref(&self) -> &AppStateInner {
        &self.0
    }
}

impl std::ops::DerefMut for AppState {
    /// Only before the router shares the state (tests replace a part of it).
    fn deref_mut(&mut self) -> &mut AppStateInner {
        Arc::get_mut(&mut self.0).expect("the state is changed only before the router shares it")
    }
}

pub struct AppStateInner {
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
    /// Creates schedule runs for `POST /admin/schedules/{id}/run`.
    pub schedules: engine::schedule::Ticker,
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
        // `connect` (the binary's path) refuses duplicate kind names before this.
        let registry = jobs::kinds::registry().expect("every kind has its own name");
        let enqueuer = Enqueuer::new(pool.clone(), queue, core.task_ttl);
        Self(Arc::new(AppStateInner {
            schedules: engine::schedule::Ticker::new(
                pool.clone(),
                enqueuer.clone(),
                registry.iter().map(|k| k.info()),
            ),
            enqueuer,
            progress: ProgressStore::new(redis.clone(), keys.clone(), core.task_ttl),
            notifier: Notifier::new(redis.clone(), keys.clone()),
            hub: events::EventHub::start(core.redis_url.clone(), keys.clone()),
            tokens: config.tokens.clone(),
            hooks: registry.hooks(),
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
        }))
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

/// Every route with its operation: `routes!` registers a handler and its `#[utoipa::path]`
/// together, so whatever is routed here is documented (`testkit/tests/openapi.rs` holds the
/// router to that: no route is added any other way).
pub fn documented_routes() -> OpenApiRouter<AppState> {
    use routes::{
        admin, deliveries, director, exports, files, health, metrics, openapi, payments, reports,
        schedules, tasks, whatsapp,
    };
    // Mounted at `/tasks` and, as the seed names them, `/director/reports/tasks`.
    let task_routes = || {
        OpenApiRouter::new()
            .routes(routes!(tasks::get_task))
            .routes(routes!(tasks::get_result))
            .routes(routes!(tasks::cancel))
            .routes(routes!(tasks::events))
    };
    OpenApiRouter::with_openapi(crate::openapi::ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(metrics::metrics))
        .routes(routes!(openapi::document))
        .routes(routes!(director::assign))
        .routes(routes!(director::payment))
        .routes(routes!(reports::ledger))
        .routes(routes!(reports::legacy_overview))
        .routes(routes!(reports::overview))
        .routes(routes!(reports::top_organizers))
        .routes(routes!(reports::debt_aging))
        .routes(routes!(reports::tickets_usage))
        .routes(routes!(reports::refresh_kpis))
        .routes(routes!(exports::create))
        .routes(routes!(files::download))
        .routes(routes!(admin::queues))
        .routes(routes!(admin::workers))
        .routes(routes!(admin::list))
        .routes(routes!(admin::retry_all))
        .routes(routes!(admin::delete))
        .routes(routes!(admin::retry_one))
        .routes(routes!(admin::ping))
        .routes(routes!(admin::pause_queue))
        .routes(routes!(admin::resume_queue))
        .routes(routes!(schedules::list))
        .routes(routes!(schedules::update))
        .routes(routes!(schedules::run_now))
        .routes(routes!(payments::intent))
        .routes(routes!(payments::webhook))
        .routes(routes!(payments::webhook_of))
        .routes(routes!(payments::get))
        .routes(routes!(deliveries::send))
        .routes(routes!(deliveries::bulk))
        .routes(routes!(whatsapp::webhook))
        .routes(routes!(whatsapp::session))
        .nest("/tasks", task_routes())
        .nest("/director/reports/tasks", task_routes())
}

/// The document `GET /openapi.json` serves for this configuration.
pub fn document(state: &AppState) -> utoipa::openapi::OpenApi {
    let (_, doc) = documented_routes().split_for_parts();
    crate::openapi::build(doc, document_limits(state))
}

fn document_limits(state: &AppState) -> crate::openapi::Limits {
    crate::openapi::Limits {
        body_bytes: state.config.body_limit,
        long_poll_seconds: state.config.long_poll_max,
        waiters_per_token: state.hub.limits().per_requester,
    }
}

pub fn router(state: AppState) -> Router {
    let (r, doc) = documented_routes().split_for_parts();
    let document =
        routes::openapi::Document::new(&crate::openapi::build(doc, document_limits(&state)));
    let body_limit = state.config.body_limit;
    // Authorization sits on the routes (it needs the matched route), so an unknown path is
    // still a 404 and a wrong method a 405, not a 401. The console's HTML pages are the one
    // router outside the document, with their own session checks (see `console`).
    r.route_layer(middleware::from_fn_with_state(
        state.clone(),
        access::authorize,
    ))
    .merge(console::router(state.clone()))
    .fallback(not_found_route)
    .layer(axum::Extension(document))
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
