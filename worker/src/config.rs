//! Worker settings, from the environment (see `.env.example`):
//! `WORKER_QUEUES`, `WORKER_CONCURRENCY`, `WORKER_CONCURRENCY_<QUEUE>`,
//! `WORKER_SHUTDOWN_TIMEOUT_SECONDS`, `WORKER_POLL_INTERVAL_MS`, `WORKER_HEARTBEAT_SECONDS`,
//! `RELAY_INTERVAL_MS`, `RELAY_BATCH`, `SCHEDULE_POLL_MS`, `WORKER_SCHEDULES`, `QUEUE_PAUSE_POLL_MS`, `WORKER_STATEMENT_TIMEOUT_MS`,
//! `QUEUE_METRICS_INTERVAL_SECONDS`, `WORKER_HEALTH_FILE`.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use jobs::config::{parsed, seconds, var, ConfigError};

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub core: jobs::Config,
    /// Queue name → concurrency, for the queues this replica serves.
    pub queues: BTreeMap<String, usize>,
    pub shutdown_timeout: Duration,
    /// Fallback poll of an idle queue; the wake channel normally wakes workers sooner.
    pub poll_interval: Duration,
    /// apalis heartbeat; a worker silent for 3 heartbeats has its messages re-queued.
    pub heartbeat: Duration,
    pub relay_interval: Duration,
    pub relay_batch: usize,
    /// How often the schedule ticker looks for due schedules (`SCHEDULE_POLL_MS`).
    pub schedule_interval: Duration,
    /// Whether this process ticks the schedules (`WORKER_SCHEDULES`, default true). Any
    /// number of replicas may; turning it off leaves the ticking to the others.
    pub run_schedules: bool,
    /// How often a worker reads which queues are paused (`QUEUE_PAUSE_POLL_MS`).
    pub pause_poll_interval: Duration,
    /// `statement_timeout` of the worker's pool (exports set their own on their connection).
    pub statement_timeout: Duration,
    /// How often the process logs one `queue_metrics` event per served queue
    /// (`QUEUE_METRICS_INTERVAL_SECONDS`, 1–86400, default 30).
    pub queue_metrics_interval: Duration,
    /// `WORKER_HEALTH_FILE`: rewritten every heartbeat for `worker health` (container probes);
    /// unset = none.
    pub health_file: Option<PathBuf>,
}

/// Default slots of the assignments queue (see where it is used).
const ASSIGNMENTS_CONCURRENCY: usize = 256;

impl WorkerConfig {
    /// `WORKER_QUEUES` with each queue's slots (`WORKER_CONCURRENCY[_<QUEUE>]`).
    fn queues_from_env() -> Result<BTreeMap<String, usize>, ConfigError> {
        let names: Vec<String> = match var("WORKER_QUEUES") {
            None => jobs::queues::ALL.iter().map(|q| q.to_string()).collect(),
            Some(list) if list.trim() == "all" || list.trim() == "*" => {
                jobs::queues::ALL.iter().map(|q| q.to_string()).collect()
            }
            Some(list) => list
                .split(',')
                .map(|q| q.trim().to_ascii_lowercase())
                .filter(|q| !q.is_empty())
                .collect(),
        };
        if names.is_empty() {
            return Err(ConfigError {
                name: "WORKER_QUEUES".into(),
                message: "lists no queue".into(),
            });
        }
        let default_concurrency: usize = parsed("WORKER_CONCURRENCY", 64)?;
        let mut queues = BTreeMap::new();
        for name in names {
            if !jobs::queues::ALL.contains(&name.as_str()) {
                return Err(ConfigError {
                    name: "WORKER_QUEUES".into(),
                    message: format!(
                        "unknown queue {name:?} (known: {})",
                        jobs::queues::ALL.join(", ")
                    ),
                });
            }
            let var_name = format!("WORKER_CONCURRENCY_{}", name.to_ascii_uppercase());
            // An export keeps a core busy (the XLSX writer) and holds its own database
            // connection for its whole run: by default a replica runs no more of them than it
            // has cores, whatever WORKER_CONCURRENCY says for the light queues.
            // A ledger writer's slot mostly waits for its group commit (`engine::group`):
            // more slots make larger groups, and a group's cost is mostly per group
            // (measured: assignment drain, 2,391/s at 64 slots, 3,948/s at 200).
            let fallback = match name.as_str() {
                jobs::queues::REPORTS if var("WORKER_CONCURRENCY").is_none() => {
                    std::thread::available_parallelism().map_or(2, |n| n.get())
                }
                jobs::queues::ASSIGNMENTS if var("WORKER_CONCURRENCY").is_none() => {
                    ASSIGNMENTS_CONCURRENCY
                }
                _ => default_concurrency,
            };
            let concurrency: usize = parsed(&var_name, fallback)?;
            if !(1..=10_000).contains(&concurrency) {
                return Err(ConfigError {
                    name: var_name,
                    message: "must be between 1 and 10000".into(),
                });
            }
            queues.insert(name, concurrency);
        }
        Ok(queues)
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        let core = jobs::Config::from_env()?;
        let queues = Self::queues_from_env()?;
        let poll_ms: u64 = parsed("WORKER_POLL_INTERVAL_MS", 200)?;
        let metrics_interval = seconds("QUEUE_METRICS_INTERVAL_SECONDS", 30)?;
        if metrics_interval > Duration::from_secs(86_400) {
            return Err(ConfigError {
                name: "QUEUE_METRICS_INTERVAL_SECONDS".into(),
                message: "must be between 1 and 86400".into(),
            });
        }
        let relay_ms: u64 = parsed("RELAY_INTERVAL_MS", 250)?;
        let schedule_ms: u64 = parsed("SCHEDULE_POLL_MS", 1000)?;
        let pause_ms: u64 = parsed("QUEUE_PAUSE_POLL_MS", 1000)?;
        Ok(Self {
            core,
            queues,
            shutdown_timeout: seconds("WORKER_SHUTDOWN_TIMEOUT_SECONDS", 25)?,
            poll_interval: Duration::from_millis(poll_ms.max(5)),
            heartbeat: seconds("WORKER_HEARTBEAT_SECONDS", 5)?,
            relay_interval: Duration::from_millis(relay_ms.max(10)),
            relay_batch: parsed("RELAY_BATCH", 200)?,
            schedule_interval: Duration::from_millis(schedule_ms.clamp(50, 60_000)),
            run_schedules: parsed("WORKER_SCHEDULES", true)?,
            pause_poll_interval: Duration::from_millis(pause_ms.clamp(50, 60_000)),
            statement_timeout: engine::db::statement_timeout_from_env(
                "WORKER_STATEMENT_TIMEOUT_MS",
                engine::db::WORKER_STATEMENT_TIMEOUT,
            )?,
            queue_metrics_interval: metrics_interval,
            health_file: var("WORKER_HEALTH_FILE").map(PathBuf::from),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_assignments_queue_defaults_to_more_slots_than_the_others() {
        // Only this test touches these variables in this process.
        std::env::remove_var("WORKER_CONCURRENCY");
        std::env::remove_var("WORKER_CONCURRENCY_ASSIGNMENTS");
        std::env::set_var("WORKER_QUEUES", "assignments,webhooks");
        let queues = WorkerConfig::queues_from_env().unwrap();
        assert_eq!(queues["assignments"], ASSIGNMENTS_CONCURRENCY);
        assert_eq!(queues["webhooks"], 64);
        std::env::set_var("WORKER_CONCURRENCY", "16");
        let queues = WorkerConfig::queues_from_env().unwrap();
        assert_eq!((queues["assignments"], queues["webhooks"]), (16, 16));
        std::env::remove_var("WORKER_CONCURRENCY");
        std::env::remove_var("WORKER_QUEUES");
    }
}
