//! `kpi_refresh`: refreshes the director KPI views (concurrently, so readers keep reading
//! them), then pre-warms the common report caches. The reports themselves read the roll-up
//! tables the ledger trigger maintains (migration 6), so they do not wait for a refresh; the
//! views are per-organizer snapshots of those tables (thousands of rows, not the ledger). Created by the worker's cron (one task
//! per tick across replicas), by `POST /director/kpis/refresh`, by `worker run-once
//! kpi-refresh`, and a few seconds after ledger writes (one per burst).

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use serde_json::{json, Value};

use engine::{enqueue::Request, retry::Backoff, Done, JobError, Kind, KindInfo};

use crate::{
    domain::reports::{self, ReportFilter, Sort, VIEWS},
    queues, Ctx, Services, ServicesExt,
};

pub const NAME: &str = "kpi_refresh";
/// Requester of the tasks the system creates by itself.
pub const SYSTEM: &str = "system";

/// The `kpi_refresh` kind.
pub struct KpiRefresh;

impl Kind for KpiRefresh {
    type State = Services;
    const NAME: &'static str = NAME;
    const QUEUE: &'static str = queues::MAINTENANCE;
    const MAX_ATTEMPTS: i32 = 3;
    const TIMEOUT: Duration = Duration::from_secs(600);
    const BACKOFF: Backoff = Backoff::new(Duration::from_secs(10), Duration::from_secs(120));

    async fn run(ctx: Ctx) -> Result<Done, JobError> {
        run(ctx).await
    }
}

/// The report caches a refresh pre-warms: what the dashboard asks for by default.
pub fn common_queries(currency: &str) -> Vec<(&'static str, ReportFilter)> {
    let q = ReportFilter::new(currency);
    let mut by_created = q.clone();
    by_created.sort = Sort::CreatedAt;
    vec![
        ("overview", q.clone()),
        ("legacy-overview", q.clone()),
        ("top-organizers", q.clone()),
        ("tickets-usage", q.clone()),
        ("debt-aging", q),
        ("tickets-usage", by_created),
    ]
}

/// Computes one report by name (shared by the api and the pre-warm).
pub async fn compute(
    pool: &sqlx::PgPool,
    report: &str,
    q: &ReportFilter,
) -> Result<Value, sqlx::Error> {
    match report {
        "top-organizers" => reports::top_organizers(pool, q).await,
        "tickets-usage" => reports::tickets_usage(pool, q).await,
        "debt-aging" => reports::debt_aging(pool, q).await,
        _ => reports::overview(pool, q).await,
    }
}

async fn run(ctx: Ctx) -> Result<Done, JobError> {
    let total = VIEWS.len() + 1;
    let mut views = Vec::new();
    for (i, view) in VIEWS.iter().enumerate() {
        ctx.check_cancel().await?;
        ctx.progress((i * 100 / total) as u8, &format!("refresh:{view}"))
            .await;
        let started = Instant::now();
        // CONCURRENTLY diffs old and new contents in memory; with the default 4 MB of
        // work_mem even a few tens of thousands of rows spill. For this transaction only.
        let mut tx = ctx.pool().begin().await?;
        sqlx::query("SET LOCAL work_mem = '256MB'")
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!("REFRESH MATERIALIZED VIEW CONCURRENTLY {view}"))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        views.push(json!({ "view": view, "ms": started.elapsed().as_millis() as u64 }));
    }
    ctx.progress((VIEWS.len() * 100 / total) as u8, "prewarm")
        .await;
    let cache = ctx.report_cache();
    // New view contents: drop what was cached from the old ones, then fill the usual reports.
    if let Err(e) = cache.invalidate().await {
        tracing::warn!(error = %e, "report cache not invalidated; entries expire by TTL");
    }
    let mut prewarmed = Vec::new();
    for (report, q) in common_queries(&ctx.config().default_currency) {
        let ttl = if report == "legacy-overview" {
            ctx.config().director_cache_ttl
        } else {
            ctx.config().director_report_cache_ttl
        };
        cache
            .get_or(report, &q.cache_key(), ttl, || {
                compute(ctx.pool(), report, &q)
            })
            .await?;
        prewarmed.push(report);
    }
    Ok(Done::Result(
        json!({ "views": views, "prewarmed": prewarmed }),
    ))
}

/// After a ledger write: make cached reports stale now, and schedule one KPI refresh at the
/// end of the current coalescing window (every write of a burst lands on the same task, by
/// its idempotency key). Best effort: the write is already committed; the cron refresh
/// catches up if this fails.
pub async fn after_ledger_write(ctx: &Ctx) {
    if let Err(e) = ctx.report_cache().invalidate().await {
        tracing::warn!(error = %e, "director caches not invalidated; they expire by TTL");
    }
    let window = ctx.config().kpi_refresh_coalesce.as_secs().max(1) as i64;
    let now = Utc::now().timestamp();
    let end = (now / window + 1) * window;
    let Some(run_at) = Utc.timestamp_opt(end, 0).single() else {
        return;
    };
    // Once this process has the window's refresh in place, its next writes in the window
    // skip the insert (the idempotency key would make it a no-op, at a Postgres round trip).
    let scheduled = &ctx.state().kpi_refresh_window;
    if scheduled.load(std::sync::atomic::Ordering::Relaxed) == end {
        return;
    }
    let key = format!("kpi_refresh:after-write:{end}");
    let result = ctx
        .enqueuer()
        .enqueue(Request {
            kind: KindInfo::of::<KpiRefresh>(),
            params: json!({ "trigger": "ledger-write" }),
            requester: SYSTEM,
            idempotency_key: Some(&key),
            request_id: None,
            run_at: Some(run_at),
        })
        .await;
    match result {
        Ok(_) => scheduled.store(end, std::sync::atomic::Ordering::Relaxed),
        Err(e) => {
            tracing::warn!(error = %e, "coalesced KPI refresh not scheduled; its schedule will refresh")
        }
    }
}
