//! Task metrics shared by every process: each worker aggregates outcomes and durations in
//! memory and adds them to one Redis hash every second (one round trip, however many tasks
//! finished), and the api renders that hash, plus live queue gauges, as Prometheus text at
//! `GET /metrics`. Histograms use fixed buckets stored cumulatively, so adding counters from
//! many replicas keeps them valid.
//!
//! Series: `taquilla_task_duration_seconds{kind,status}` for every finished attempt, and
//! `director_jobs_reports_duration_seconds{report,format,status}` for exports (the seed's
//! `director.jobs.reports.duration` and `status`).

use std::{
    collections::{BTreeMap, HashMap},
    fmt::Write,
    sync::{Arc, Mutex},
    time::Duration,
};

use redis::aio::ConnectionManager;

use crate::redis_conn::Keys;

/// Upper bounds of the duration buckets, in seconds.
pub const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
];

/// Field of the Redis hash: `metric \t labels \t part`, part = `count`, `sum_us` or a bucket
/// bound (`+Inf` included).
fn field(metric: &str, labels: &str, part: &str) -> String {
    format!("{metric}\t{labels}\t{part}")
}

/// Renders `[("kind", "noop")]` as `kind="noop"`, escaping as the text format wants.
pub fn labels(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let v = v
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        let _ = write!(out, "{k}=\"{v}\"");
    }
    out
}

/// In-process aggregation, flushed to Redis by [`Metrics::run_flusher`]; plus this
/// process's finished attempts per (queue, outcome), read and reset by the periodic
/// `queue_metrics` log ([`Metrics::take_outcomes`]).
#[derive(Clone, Default)]
pub struct Metrics {
    pending: Arc<Mutex<HashMap<String, i64>>>,
    outcomes: Arc<Mutex<HashMap<(String, String), u64>>>,
}

impl Metrics {
    /// Counts one finished attempt of `queue` ending in `outcome` (a task status, or
    /// `waiting` / `superseded`).
    pub fn count_outcome(&self, queue: &str, outcome: &str) {
        if let Ok(mut map) = self.outcomes.lock() {
            *map.entry((queue.to_string(), outcome.to_string()))
                .or_default() += 1;
        }
    }

    /// The attempts counted since the previous call, by (queue, outcome).
    pub fn take_outcomes(&self) -> HashMap<(String, String), u64> {
        self.outcomes
            .lock()
            .map(|mut m| std::mem::take(&mut *m))
            .unwrap_or_default()
    }

    /// Records one observation of a duration histogram.
    pub fn observe(&self, metric: &str, label_pairs: &[(&str, &str)], seconds: f64) {
        let l = labels(label_pairs);
        let Ok(mut map) = self.pending.lock() else {
            return;
        };
        *map.entry(field(metric, &l, "count")).or_default() += 1;
        *map.entry(field(metric, &l, "sum_us")).or_default() += (seconds * 1e6) as i64;
        for b in BUCKETS {
            if seconds <= b {
                *map.entry(field(metric, &l, &b.to_string())).or_default() += 1;
            }
        }
        *map.entry(field(metric, &l, "+Inf")).or_default() += 1;
    }

    fn take(&self) -> HashMap<String, i64> {
        self.pending
            .lock()
            .map(|mut m| std::mem::take(&mut *m))
            .unwrap_or_default()
    }

    /// Adds what accumulated to the shared hash every `period`, until the process ends. A
    /// failed flush puts the counts back for the next one: nothing is lost to a Redis blip.
    pub async fn run_flusher(
        self,
        mut redis: ConnectionManager,
        keys: Keys,
        period: Duration,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let key = keys.metrics();
        loop {
            let stopping = tokio::select! {
                _ = tokio::time::sleep(period) => false,
                _ = stop.cancelled() => true,
            };
            let batch = self.take();
            if !batch.is_empty() {
                let mut pipe = redis::pipe();
                for (f, n) in &batch {
                    pipe.hincr(&key, f, *n).ignore();
                }
                if let Err(e) = pipe.query_async::<()>(&mut redis).await {
                    tracing::debug!(error = %e, "metrics not flushed; kept for the next flush");
                    if let Ok(mut map) = self.pending.lock() {
                        for (f, n) in batch {
                            *map.entry(f).or_default() += n;
                        }
                    }
                }
            }
            if stopping {
                return;
            }
        }
    }
}

/// Renders the shared hash (as read with HGETALL) in the Prometheus text format.
pub fn render_histograms(hash: &HashMap<String, i64>, out: &mut String) {
    // metric → labels → part → value, sorted for stable output.
    let mut tree: BTreeMap<&str, BTreeMap<&str, HashMap<&str, i64>>> = BTreeMap::new();
    for (f, v) in hash {
        let mut it = f.splitn(3, '\t');
        let (Some(m), Some(l), Some(p)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        tree.entry(m)
            .or_default()
            .entry(l)
            .or_default()
            .insert(p, *v);
    }
    for (metric, series) in tree {
        let _ = writeln!(out, "# TYPE {metric} histogram");
        for (l, parts) in series {
            let sep = if l.is_empty() { "" } else { "," };
            for b in BUCKETS {
                let n = parts.get(b.to_string().as_str()).copied().unwrap_or(0);
                let _ = writeln!(out, "{metric}_bucket{{{l}{sep}le=\"{b}\"}} {n}");
            }
            let inf = parts.get("+Inf").copied().unwrap_or(0);
            let _ = writeln!(out, "{metric}_bucket{{{l}{sep}le=\"+Inf\"}} {inf}");
            let sum = parts.get("sum_us").copied().unwrap_or(0) as f64 / 1e6;
            let _ = writeln!(out, "{metric}_sum{{{l}}} {sum}");
            let count = parts.get("count").copied().unwrap_or(0);
            let _ = writeln!(out, "{metric}_count{{{l}}} {count}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_renders_cumulative_buckets() {
        let m = Metrics::default();
        m.observe("t_seconds", &[("kind", "noop")], 0.003);
        m.observe("t_seconds", &[("kind", "noop")], 2.0);
        let hash = m.take();
        let mut out = String::new();
        render_histograms(&hash, &mut out);
        assert!(
            out.contains("t_seconds_bucket{kind=\"noop\",le=\"0.005\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("t_seconds_bucket{kind=\"noop\",le=\"1\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("t_seconds_bucket{kind=\"noop\",le=\"5\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("t_seconds_bucket{kind=\"noop\",le=\"+Inf\"} 2\n"),
            "{out}"
        );
        assert!(out.contains("t_seconds_count{kind=\"noop\"} 2\n"), "{out}");
        assert!(
            out.contains("t_seconds_sum{kind=\"noop\"} 2.003\n"),
            "{out}"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(labels(&[("a", "x\"y\\z")]), "a=\"x\\\"y\\\\z\"");
    }
}
