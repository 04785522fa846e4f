//! `GET /metrics`: Prometheus text. Task and export durations come from the hash every
//! worker adds to (`engine::metrics`); message depths are read live from Redis; the per-queue
//! task counts (an aggregate over `tasks`) are computed at most once per
//! `METRICS_CACHE_SECONDS` however many scrapers call. In production a scrape needs
//! `Authorization: Bearer` with `METRICS_TOKEN` or an operator/admin token; in development it
//! is open, like `/healthz`. It shows counts, never task data.

use std::{
    collections::HashMap,
    fmt::Write,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    extract::State,
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use engine::{
    metrics,
    redis_conn::Keys,
    store::{self, QueueStats},
    transport::MessageQueue,
};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tokio::sync::Mutex;

use crate::openapi::responses::{ErrorBody, StoreDown, TooLarge};
use crate::{auth, error::ApiError, AppState};

/// The last per-queue task counts and when they were read. The lock is held while they are
/// recomputed, so scrapes arriving together share one query instead of each running it.
#[derive(Debug)]
pub struct QueueStatsCache {
    ttl: Duration,
    last: Mutex<Option<(Instant, Arc<Vec<QueueStats>>)>>,
}

impl QueueStatsCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            last: Mutex::new(None),
        }
    }

    /// The counts, and how old they are; failures are not kept, so the next scrape retries.
    pub(crate) async fn get(
        &self,
        pool: &PgPool,
    ) -> Result<(Arc<Vec<QueueStats>>, Duration), sqlx::Error> {
        let mut last = self.last.lock().await;
        if let Some((at, stats)) = last.as_ref() {
            if at.elapsed() < self.ttl {
                return Ok((stats.clone(), at.elapsed()));
            }
        }
        let stats = Arc::new(store::queue_stats(pool, &jobs::queues::ALL).await?);
        *last = Some((Instant::now(), stats.clone()));
        Ok((stats, Duration::ZERO))
    }
}

/// Whether this scrape may read the metrics (see the module doc).
fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if !state.config.core.environment.is_production() {
        return Ok(());
    }
    let token = auth::bearer(headers)?;
    if let Some(expected) = &state.config.security.metrics_token {
        // Digests of equal length, compared without an early exit.
        let (a, b) = (Sha256::digest(token), Sha256::digest(expected));
        let diff = a
            .iter()
            .zip(b.iter())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y));
        if std::hint::black_box(diff) == 0 {
            return Ok(());
        }
    }
    match state.tokens.lookup(token) {
        Some(p) if p.can_observe() => Ok(()),
        Some(_) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "/metrics needs METRICS_TOKEN or an operator or admin token",
        )),
        None => Err(ApiError::unauthorized("unknown token")),
    }
}

#[utoipa::path(get, path = "/metrics", tag = "ops", summary = "Prometheus metrics",
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "text format 0.0.4", content_type = "text/plain", body = String),
        StoreDown, TooLarge,
        (status = 401, description = "Production: missing or unknown bearer token", body = ErrorBody),
        (status = 403, description = "Production: a client token (neither METRICS_TOKEN nor an operator/admin token)", body = ErrorBody)))]
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(e) = authorize(&state, &headers) {
        return e.into_response();
    }
    let keys = Keys::new(state.config.core.redis_prefix.clone());
    let mut out = String::new();
    let mut errors = 0;

    match state.queue_stats.get(&state.pool).await {
        Ok((stats, age)) => {
            // queue_stats lists every queue, idle ones as zeros: series never vanish.
            let _ = writeln!(
                out,
                "# HELP taquilla_queue_tasks Tasks per queue and state."
            );
            let _ = writeln!(out, "# TYPE taquilla_queue_tasks gauge");
            for s in stats.iter() {
                let counts = [
                    ("pending", s.pending),
                    ("running", s.running),
                    ("retrying", s.retrying),
                    ("scheduled", s.scheduled),
                    ("failed", s.failed),
                    ("dead", s.dead),
                ];
                for (st, n) in counts {
                    let _ = writeln!(
                        out,
                        "taquilla_queue_tasks{{queue=\"{}\",state=\"{st}\"}} {n}",
                        s.queue
                    );
                }
            }
            let _ = writeln!(
                out,
                "# HELP taquilla_queue_oldest_pending_age_seconds Age of the oldest due task."
            );
            let _ = writeln!(
                out,
                "# TYPE taquilla_queue_oldest_pending_age_seconds gauge"
            );
            for s in stats.iter() {
                // A reused reading: the oldest due task has aged since.
                let oldest = s
                    .oldest_pending_age_seconds
                    .map_or(0.0, |a| a + age.as_secs_f64());
                let _ = writeln!(
                    out,
                    "taquilla_queue_oldest_pending_age_seconds{{queue=\"{}\"}} {oldest}",
                    s.queue,
                );
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "metrics: queue stats unavailable");
            errors += 1;
        }
    }

    let transport = MessageQueue::new(
        state.redis.clone(),
        keys.clone(),
        state.config.core.queue_max_ready,
    );
    let _ = writeln!(
        out,
        "# HELP taquilla_queue_redis_messages Transport messages waiting in Redis."
    );
    let _ = writeln!(out, "# TYPE taquilla_queue_redis_messages gauge");
    for q in jobs::queues::ALL {
        match transport.depth(q).await {
            Ok(n) => {
                let _ = writeln!(out, "taquilla_queue_redis_messages{{queue=\"{q}\"}} {n}");
            }
            Err(_) => errors += 1,
        }
    }

    match engine::transport::pause::list(&state.pool).await {
        Ok(pauses) => {
            let _ = writeln!(
                out,
                "# HELP taquilla_queue_paused 1 while the queue is paused (accepting, not run)."
            );
            let _ = writeln!(out, "# TYPE taquilla_queue_paused gauge");
            for q in jobs::queues::ALL {
                let paused = pauses.iter().any(|p| p.queue == q) as u8;
                let _ = writeln!(out, "taquilla_queue_paused{{queue=\"{q}\"}} {paused}");
            }
        }
        Err(_) => errors += 1,
    }

    let mut redis = state.redis.clone();
    match redis::cmd("HGETALL")
        .arg(keys.metrics())
        .query_async::<HashMap<String, i64>>(&mut redis)
        .await
    {
        Ok(hash) => metrics::render_histograms(&hash, &mut out),
        Err(e) => {
            tracing::warn!(error = %e, "metrics: task histograms unavailable");
            errors += 1;
        }
    }
    let _ = writeln!(
        out,
        "# HELP taquilla_metrics_scrape_errors Sources that could not be read for this scrape."
    );
    let _ = writeln!(out, "# TYPE taquilla_metrics_scrape_errors gauge");
    let _ = writeln!(out, "taquilla_metrics_scrape_errors {errors}");

    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        out,
    )
        .into_response()
}
