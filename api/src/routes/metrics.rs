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
            // Every queue, idle ones too (zeros), so series do not vanish between scrapes.
            let rows: Vec<(&str, [i64; 6], f64)> = jobs::queue::ALL
                .iter()
                .map(|q| match stats.iter().find(|s| s.queue == *q) {
                    Some(s) => (
                        *q,
                        [
                            s.pending,
                            s.running,
                            s.retrying,
                            s.scheduled,
                            s.failed,
                            s.dead,
                        ],
                        s.oldest_pending_age_seconds.unwrap_or(0.0),
                    ),
                    None => (*q, [0; 6], 0.0),
                })
                .collect();
            let _ = writeln!(
                out,
                "# HELP taquilla_queue_tasks Tasks per queue and state."
            );
            let _ = writeln!(out, "# TYPE taquilla_queue_tasks gauge");
            for (q, counts, _) in &rows {
                let states = [
                    "pending",
                    "running",
                    "retrying",
                    "scheduled",
                    "failed",
                    "dead",
                ];
                for (st, n) in states.iter().zip(counts) {
                    let _ = writeln!(
                        out,
                        "taquilla_queue_tasks{{queue=\"{q}\",state=\"{st}\"}} {n}"
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
            for (q, _, age) in &rows {
                let _ = writeln!(
                    out,
                    "taquilla_queue_oldest_pending_age_seconds{{queue=\"{q}\"}} {age}"
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
