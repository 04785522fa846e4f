//! `/console`: per queue, tasks by state, oldest pending age, paused or not, throughput and
//! failures per minute over the last hour and day, workers alive, and the health of Postgres
//! and Redis, live: the page polls `/console/live/overview` every 5 s (the lifetime of the
//! counts it shows). Its cost: the per-queue counts come from the cache `/metrics` uses
//! (one aggregate over the partial indexes per `METRICS_CACHE_SECONDS`, however many
//! consoles are open), the charts from the per-minute counters in Redis
//! (`engine::metrics::minute_counts`), the rest from small tables and the running tasks
//! (no scan of `tasks`). The dead letters by kind, with their one-click re-drive, are read
//! when the page loads, not on every refresh (an aggregate over every failed and dead task).

use std::{
    collections::{BTreeMap, HashMap},
    time::Instant,
};

use axum::{
    extract::{Query, State},
    Extension,
};
use engine::metrics::MinuteCount;
use maud::{html, Markup};

use super::{html, notice};
use crate::console::{layout, session::may_act, Page};
use crate::{auth::Principal, AppState};

/// Milliseconds between two refreshes of the live part: the default lifetime of the
/// per-queue counts (`METRICS_CACHE_SECONDS`), so a faster poll would only see the same.
pub const REFRESH_MS: u32 = 5000;

pub async fn page(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
) -> Page {
    let live = fragment(&state, &who).await?;
    let dead = dead_letters(&state, &who).await?;
    Ok(html(layout::page(
        "Overview",
        Some(&who),
        html! {
            (notice(&q))
            div id="live" data-live="/console/live/overview" data-every=(REFRESH_MS) { (live) }
            (dead)
        },
    )))
}

pub async fn live(State(state): State<AppState>, Extension(who): Extension<Principal>) -> Page {
    Ok(html(fragment(&state, &who).await?))
}

/// Per queue, per minute.
type Series = BTreeMap<String, BTreeMap<i64, MinuteCount>>;

async fn series(state: &AppState, now_minute: i64) -> Result<Series, redis::RedisError> {
    let keys = engine::redis_conn::Keys::new(state.config.core.redis_prefix.clone());
    let mut redis = state.redis.clone();
    let counts =
        engine::metrics::minute_counts(&mut redis, &keys, now_minute - 1439, now_minute).await?;
    let mut out: Series = BTreeMap::new();
    for ((minute, queue), c) in counts {
        out.entry(queue).or_default().insert(minute, c);
    }
    Ok(out)
}

/// A bar chart of `buckets` bars of `width` minutes ending at `now_minute`: completed in
/// green, failed stacked in red.
fn chart(
    id: &str,
    per_minute: Option<&BTreeMap<i64, MinuteCount>>,
    now_minute: i64,
    buckets: i64,
    width: i64,
) -> Markup {
    let start = now_minute - buckets * width + 1;
    let mut bars = vec![MinuteCount::default(); buckets as usize];
    if let Some(m) = per_minute {
        for (minute, c) in m.range(start..=now_minute) {
            let b = &mut bars[((minute - start) / width) as usize];
            b.completed += c.completed;
            b.failed += c.failed;
        }
    }
    let (done, failed): (i64, i64) = bars
        .iter()
        .fold((0, 0), |(d, f), b| (d + b.completed, f + b.failed));
    let peak = bars
        .iter()
        .map(|b| b.completed + b.failed)
        .max()
        .unwrap_or(0)
        .max(1);
    let (w, h) = (buckets as f64 * 4.0, 100.0);
    let per = if width == 1 {
        "min".to_string()
    } else {
        format!("{width} min")
    };
    html! {
        div.chart id=(id) data-completed=(done) data-failed=(failed) {
            svg viewBox={ "0 0 " (w) " " (h) } preserveAspectRatio="none" role="img" {
                title { (done) " completed, " (failed) " failed; peak " (peak) " per " (per) }
                @for (i, b) in bars.iter().enumerate() {
                    @let x = i as f64 * 4.0;
                    @let hc = b.completed as f64 / peak as f64 * h;
                    @let hf = b.failed as f64 / peak as f64 * h;
                    @if b.completed > 0 { rect.c x=(x) y=(h - hc) width="3" height=(hc) {} }
                    @if b.failed > 0 { rect.f x=(x) y=(h - hc - hf) width="3" height=(hf) {} }
                }
            }
            div.legend {
                span.c { (done) " completed" } span.f { (failed) " failed" }
                span.muted { "peak " (peak) " / " (per) }
            }
        }
    }
}

async fn fragment(state: &AppState, who: &Principal) -> Result<Markup, crate::console::Error> {
    let admin = may_act(who);
    let t = Instant::now();
    let pg_ok = sqlx::query("SELECT 1").execute(&state.pool).await.is_ok();
    let pg_ms = t.elapsed().as_secs_f64() * 1000.0;
    let mut redis = state.redis.clone();
    let t = Instant::now();
    let redis_ok = redis::cmd("PING")
        .query_async::<String>(&mut redis)
        .await
        .is_ok();
    let redis_ms = t.elapsed().as_secs_f64() * 1000.0;
    let (stats, age) = state.queue_stats.get(&state.pool).await?;
    let pauses = engine::transport::pause::list(&state.pool).await?;
    let workers = crate::routes::admin::worker_rows(state)
        .await
        .unwrap_or_default();
    let alive = workers.iter().filter(|w| w["alive"] == true).count();
    let now_minute = chrono::Utc::now().timestamp().div_euclid(60);
    let series = series(state, now_minute).await.unwrap_or_default();
    Ok(html! {
        div.grid {
            div.card id="health" {
                "Postgres " (layout::status(if pg_ok { "up" } else { "down" })) " " (format!("{pg_ms:.1} ms"))
                " · Redis " (layout::status(if redis_ok { "up" } else { "down" })) " " (format!("{redis_ms:.1} ms"))
            }
            div.card { a href="/console/workers" { "Workers alive: " strong id="workers-alive" { (alive) } } " of " (workers.len()) }
            div.card.muted { "Counts refreshed " (format!("{:.0}", age.as_secs_f64())) " s ago; charts from per-minute counters" }
        }
        h2 { "Queues" }
        table id="queues" {
            tr {
                th { "Queue" } th { "State" } th.num { "Pending" } th.num { "Running" } th.num { "Retrying" }
                th.num { "Scheduled" } th.num { "Failed" } th.num { "Dead" } th { "Oldest pending" }
                th { "Last hour" } th { "Last day (15 min bars)" }
                @if admin { th { "Action" } }
            }
            @for s in stats.iter() {
                @let paused = pauses.iter().find(|p| p.queue == s.queue);
                tr id={ "queue-" (s.queue) } {
                    td { a href={ "/console/tasks?queue=" (s.queue) } { (s.queue) } }
                    td.state {
                        @if let Some(p) = paused { (layout::status("paused")) " by " (p.paused_by) } @else { (layout::status("running")) }
                    }
                    td.num.pending { a href={ "/console/tasks?queue=" (s.queue) "&status=pending" } { (s.pending) } }
                    td.num.running { (s.running) }
                    td.num.retrying { (s.retrying) }
                    td.num.scheduled { (s.scheduled) }
                    td.num.failed { a href={ "/console/tasks?queue=" (s.queue) "&status=failed" } { (s.failed) } }
                    td.num.dead { a href={ "/console/tasks?queue=" (s.queue) "&status=dead" } { (s.dead) } }
                    td { (s.oldest_pending_age_seconds.map(layout::duration).unwrap_or_else(|| "—".into())) }
                    td { (chart(&format!("hour-{}", s.queue), series.get(&s.queue), now_minute, 60, 1)) }
                    td { (chart(&format!("day-{}", s.queue), series.get(&s.queue), now_minute, 96, 15)) }
                    @if admin {
                        td {
                            @if paused.is_some() {
                                (layout::action_button(&format!("/console/queues/{}/resume", s.queue), "Resume", &format!("resume-{}", s.queue)))
                            } @else {
                                (layout::action_button(&format!("/console/queues/{}/pause", s.queue), "Pause", &format!("pause-{}", s.queue)))
                            }
                        }
                    }
                }
            }
        }
    })
}

/// Dead tasks by kind, each with its one-click re-drive (admins).
async fn dead_letters(state: &AppState, who: &Principal) -> Result<Markup, crate::console::Error> {
    let admin = may_act(who);
    let dead: Vec<(String, i64)> = sqlx::query_as(
        "SELECT kind, count(*) FROM tasks WHERE status = 'dead' GROUP BY kind ORDER BY kind",
    )
    .fetch_all(&state.pool)
    .await?;
    Ok(html! {
        h2 { "Dead letters" }
        @if dead.is_empty() { p.muted id="dead-none" { "None." } }
        @else {
            table id="dead" {
                tr { th { "Kind" } th.num { "Dead" } @if admin { th { "Action" } } }
                @for (kind, n) in &dead {
                    tr {
                        td { a href={ "/console/tasks?status=dead&kind=" (kind) } { (kind) } }
                        td.num { (n) }
                        @if admin {
                            td { (layout::action_button(&format!("/console/dead/{kind}/redrive"), &format!("Re-drive all {n}"), &format!("redrive-{kind}"))) }
                        }
                    }
                }
            }
        }
    })
}
