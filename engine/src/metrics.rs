//! Task metrics shared by every process: each worker aggregates outcomes and durations in
//! memory and adds them to one Redis hash every second (one round trip, however many tasks
//! finished), and the api renders that hash, plus live queue gauges, as Prometheus text at
//! `GET /metrics`. Histograms use fixed buckets stored cumulatively, so adding counters from
//! many replicas keeps them valid.
//!
//! Next to the histograms, every finished attempt also adds one to a per-minute counter
//! (queue, minute, completed or failed) in a hash per UTC day that expires after two days:
//! the operator console draws throughput and failures over the last hour and day from these
//! (at most 1,440 minutes × queues × 2 fields to read), never from a scan of `tasks`.
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
        let _ = write!(out, "{k}=\"");
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out
}

/// `map[key]`, inserted empty when missing: looked up by `&str`, so the key is copied only
/// the first time.
fn entry<'m, V: Default>(map: &'m mut HashMap<String, V>, key: &str) -> &'m mut V {
    if !map.contains_key(key) {
        map.insert(key.to_owned(), V::default());
    }
    map.get_mut(key).expect("inserted above")
}

/// In-process aggregation, flushed to Redis by [`Metrics::run_flusher`]; plus this
/// process's finished attempts per (queue, outcome), read and reset by the periodic
/// `queue_metrics` log ([`Metrics::take_outcomes`]).
///
/// Every finished attempt passes through here, so recording one builds only its label string
/// (and the series' keys the first time): hash fields and bucket bounds are spelled out only
/// when flushed, once a second.
#[derive(Clone, Default)]
pub struct Metrics {
    pending: Arc<Mutex<Histograms>>,
    /// Fields of a flush that failed, added to the next one.
    unflushed: Arc<Mutex<HashMap<String, i64>>>,
    outcomes: Arc<Mutex<HashMap<String, HashMap<String, u64>>>>,
    minutes: Arc<Mutex<MinuteBatch>>,
}

/// metric → labels (as rendered by [`labels`]) → series.
type Histograms = HashMap<String, HashMap<String, Series>>;

/// One histogram series since the last flush.
#[derive(Debug, Clone, Copy, Default)]
struct Series {
    count: i64,
    sum_us: i64,
    /// Observations at or below each of [`BUCKETS`] (cumulative, as stored).
    buckets: [i64; BUCKETS.len()],
}

/// queue → (minute since the epoch, outcome) → attempts, for [`minute_counts`].
type MinuteBatch = HashMap<String, HashMap<(i64, Outcome), i64>>;

/// How an attempt counts in the per-minute series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Completed,
    /// The attempt ended with an error (retried, failed or dead).
    Failed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "c",
            Outcome::Failed => "f",
        }
    }
}

/// Per-minute hashes live this long: a day of history plus the day being written.
const MINUTES_TTL_SECONDS: i64 = 2 * 86_400;

/// One minute of one queue: attempts completed and failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MinuteCount {
    pub completed: i64,
    pub failed: i64,
}

/// Per-minute counts since `since_minute` (minutes since the epoch), as
/// `(minute, queue) → counts`, read from the day hashes that cover the window (two at most
/// for a day's window).
pub async fn minute_counts(
    redis: &mut ConnectionManager,
    keys: &Keys,
    since_minute: i64,
    now_minute: i64,
) -> redis::RedisResult<BTreeMap<(i64, String), MinuteCount>> {
    let mut pipe = redis::pipe();
    let days: Vec<i64> = (since_minute.div_euclid(1440)..=now_minute.div_euclid(1440)).collect();
    for day in &days {
        pipe.hgetall(keys.metrics_minutes(*day));
    }
    let hashes: Vec<HashMap<String, i64>> = pipe.query_async(redis).await?;
    let mut out: BTreeMap<(i64, String), MinuteCount> = BTreeMap::new();
    for (f, n) in hashes.iter().flatten() {
        let mut it = f.splitn(3, '\t');
        let (Some(m), Some(queue), Some(o)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let Ok(minute) = m.parse::<i64>() else {
            continue;
        };
        if minute < since_minute || minute > now_minute {
            continue;
        }
        let slot = out.entry((minute, queue.to_string())).or_default();
        match o {
            "c" => slot.completed += n,
            "f" => slot.failed += n,
            _ => {}
        }
    }
    Ok(out)
}

impl Metrics {
    /// Counts one finished attempt of `queue` ending in `outcome` (a task status, or
    /// `waiting` / `superseded`).
    pub fn count_outcome(&self, queue: &str, outcome: &str) {
        if let Ok(mut map) = self.outcomes.lock() {
            *entry(entry(&mut map, queue), outcome) += 1;
        }
    }

    /// The attempts counted since the previous call, by (queue, outcome).
    pub fn take_outcomes(&self) -> HashMap<(String, String), u64> {
        let taken = self
            .outcomes
            .lock()
            .map(|mut m| std::mem::take(&mut *m))
            .unwrap_or_default();
        taken
            .into_iter()
            .flat_map(|(queue, by)| by.into_iter().map(move |(o, n)| ((queue.clone(), o), n)))
            .collect()
    }

    /// Records one observation of a duration histogram.
    pub fn observe(&self, metric: &str, label_pairs: &[(&str, &str)], seconds: f64) {
        let l = labels(label_pairs);
        let Ok(mut map) = self.pending.lock() else {
            return;
        };
        let series = entry(entry(&mut map, metric), &l);
        series.count += 1;
        series.sum_us += (seconds * 1e6) as i64;
        for (n, bound) in series.buckets.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *n += 1;
            }
        }
    }

    /// Counts one finished attempt on `queue` in the current minute (see [`minute_counts`]).
    pub fn count_minute(&self, queue: &str, outcome: Outcome) {
        let minute = chrono::Utc::now().timestamp().div_euclid(60);
        if let Ok(mut map) = self.minutes.lock() {
            *entry(&mut map, queue).entry((minute, outcome)).or_default() += 1;
        }
    }

    fn take_minutes(&self) -> MinuteBatch {
        self.minutes
            .lock()
            .map(|mut m| std::mem::take(&mut *m))
            .unwrap_or_default()
    }

    /// The histograms' hash fields since the last flush, with those of failed flushes.
    fn take(&self) -> HashMap<String, i64> {
        let mut fields = self
            .unflushed
            .lock()
            .map(|mut m| std::mem::take(&mut *m))
            .unwrap_or_default();
        let series = self
            .pending
            .lock()
            .map(|mut m| std::mem::take(&mut *m))
            .unwrap_or_default();
        for (metric, by_labels) in &series {
            for (l, s) in by_labels {
                let mut add = |part: &str, n: i64| {
                    *fields.entry(field(metric, l, part)).or_default() += n;
                };
                add("count", s.count);
                add("sum_us", s.sum_us);
                for (n, bound) in s.buckets.iter().zip(BUCKETS) {
                    add(&bound.to_string(), *n);
                }
                add("+Inf", s.count);
            }
        }
        fields
    }

    /// Puts back what a failed flush took, to be added to the next one.
    fn keep_for_next(&self, fields: HashMap<String, i64>, minutes: MinuteBatch) {
        if let Ok(mut map) = self.unflushed.lock() {
            for (f, n) in fields {
                *map.entry(f).or_default() += n;
            }
        }
        if let Ok(mut map) = self.minutes.lock() {
            for (queue, counts) in minutes {
                let slot = map.entry(queue).or_default();
                for (k, n) in counts {
                    *slot.entry(k).or_default() += n;
                }
            }
        }
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
            let minutes = self.take_minutes();
            if !batch.is_empty() || !minutes.is_empty() {
                let mut pipe = redis::pipe();
                for (f, n) in &batch {
                    pipe.hincr(&key, f, *n).ignore();
                }
                let mut days = std::collections::BTreeSet::new();
                for (queue, counts) in &minutes {
                    for ((minute, outcome), n) in counts {
                        let day = minute.div_euclid(1440);
                        days.insert(day);
                        let f = format!("{minute}\t{queue}\t{}", outcome.as_str());
                        pipe.hincr(keys.metrics_minutes(day), f, *n).ignore();
                    }
                }
                for day in days {
                    pipe.expire(keys.metrics_minutes(day), MINUTES_TTL_SECONDS)
                        .ignore();
                }
                if let Err(e) = pipe.query_async::<()>(&mut redis).await {
                    tracing::debug!(error = %e, "metrics not flushed; kept for the next flush");
                    self.keep_for_next(batch, minutes);
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
    fn counts_add_up_until_taken_and_start_again_after() {
        let m = Metrics::default();
        for s in [0.001, 0.02, 0.02] {
            m.observe("t_seconds", &[("kind", "noop"), ("status", "completed")], s);
        }
        m.observe("t_seconds", &[("kind", "noop"), ("status", "dead")], 40.0);
        m.count_outcome("maintenance", "completed");
        m.count_outcome("maintenance", "completed");
        m.count_outcome("exports", "dead");
        let fields = m.take();
        let ok = "kind=\"noop\",status=\"completed\"";
        assert_eq!(fields[&field("t_seconds", ok, "count")], 3);
        assert_eq!(fields[&field("t_seconds", ok, "sum_us")], 41_000);
        assert_eq!(fields[&field("t_seconds", ok, "0.005")], 1);
        assert_eq!(fields[&field("t_seconds", ok, "0.05")], 3);
        assert_eq!(fields[&field("t_seconds", ok, "+Inf")], 3);
        let dead = "kind=\"noop\",status=\"dead\"";
        assert_eq!(fields[&field("t_seconds", dead, "30")], 0);
        assert_eq!(fields[&field("t_seconds", dead, "60")], 1);
        assert!(m.take().is_empty(), "taken once");
        let outcomes = m.take_outcomes();
        assert_eq!(outcomes[&("maintenance".into(), "completed".into())], 2);
        assert_eq!(outcomes[&("exports".into(), "dead".into())], 1);
        assert!(m.take_outcomes().is_empty());
    }

    #[test]
    fn a_failed_flush_is_added_to_the_next() {
        let m = Metrics::default();
        m.observe("t_seconds", &[("kind", "noop")], 0.5);
        m.count_minute("maintenance", Outcome::Completed);
        m.keep_for_next(m.take(), m.take_minutes());
        m.observe("t_seconds", &[("kind", "noop")], 0.5);
        let fields = m.take();
        assert_eq!(fields[&field("t_seconds", "kind=\"noop\"", "count")], 2);
        assert_eq!(fields[&field("t_seconds", "kind=\"noop\"", "0.5")], 2);
        let minutes = m.take_minutes();
        assert_eq!(minutes["maintenance"].values().sum::<i64>(), 1);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(labels(&[("a", "x\"y\\z")]), "a=\"x\\\"y\\\\z\"");
    }
}
