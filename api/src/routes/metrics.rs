//! `GET /metrics`: Prometheus text. Task and export durations come from the hash every
//! worker adds to (`jobs::metrics`); queue gauges are read live from Postgres and Redis.
//! Unauthenticated like `/healthz`, for scrapers; it shows counts, never task data.

use std::{collections::HashMap, fmt::Write};

use axum::{
    extract::State,
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
};
use jobs::{metrics, queue::Transport, redis_conn::Keys, task::store};

use crate::AppState;

pub async fn metrics(State(state): State<AppState>) -> Response {
    let keys = Keys::new(state.config.core.redis_prefix.clone());
    let mut out = String::new();
    let mut errors = 0;

    match store::queue_stats(&state.pool).await {
        Ok(stats) => {
            // queue_stats lists every queue, idle ones as zeros: series never vanish.
            let _ = writeln!(
                out,
                "# HELP taquilla_queue_tasks Tasks per queue and state."
            );
            let _ = writeln!(out, "# TYPE taquilla_queue_tasks gauge");
            for s in &stats {
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
            for s in &stats {
                let _ = writeln!(
                    out,
                    "taquilla_queue_oldest_pending_age_seconds{{queue=\"{}\"}} {}",
                    s.queue,
                    s.oldest_pending_age_seconds.unwrap_or(0.0)
                );
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "metrics: queue stats unavailable");
            errors += 1;
        }
    }

    let transport = Transport::new(
        state.redis.clone(),
        keys.clone(),
        state.config.core.queue_max_ready,
    );
    let _ = writeln!(
        out,
        "# HELP taquilla_queue_redis_messages Transport messages waiting in Redis."
    );
    let _ = writeln!(out, "# TYPE taquilla_queue_redis_messages gauge");
    for q in jobs::queue::ALL {
        match transport.depth(q).await {
            Ok(n) => {
                let _ = writeln!(out, "taquilla_queue_redis_messages{{queue=\"{q}\"}} {n}");
            }
            Err(_) => errors += 1,
        }
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
