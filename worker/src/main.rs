//! `worker`: runs the queues of this replica until SIGTERM/SIGINT.

use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

/// jemalloc rather than glibc's allocator: a fifth of the worker's CPU in a drain was glibc's
/// malloc and free (consolidating freed chunks), about a sixth less CPU per task with jemalloc;
/// mimalloc was as fast but doubled the export's peak memory (BENCHMARKS.md, "Issue 15, sixth
/// step").
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "worker",
    about = "taquilla worker: runs tasks from the Redis queues"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the worker (the default).
    Run,
    /// Apply database migrations and exit.
    Migrate,
    /// Check the export storage: create the S3 bucket when missing (S3_BUCKET; for
    /// development and test servers), or the local directory. Exit 0 when usable.
    EnsureStorage,
    /// Container probe: exit 0 when the running worker's WORKER_HEALTH_FILE was rewritten
    /// recently (live), and with --ready when it also reached Postgres and Redis.
    Health {
        /// Also require the last beat to have reached Postgres and Redis.
        #[arg(long)]
        ready: bool,
        /// Oldest beat still counted as alive.
        #[arg(long, default_value_t = 30)]
        max_age_seconds: u64,
    },
    /// Create one task, wait for a worker to finish it, print it, exit 0 if it completed.
    /// For an external cron, e.g. `worker run-once kpi-refresh`, or by hand, e.g.
    /// `worker run-once landing-ttl --dry-run`.
    RunOnce {
        /// What to run.
        #[arg(value_enum)]
        job: OnceJob,
        /// Give up waiting after this many seconds (the task itself goes on).
        #[arg(long, default_value_t = 900)]
        timeout: u64,
        /// landing-ttl: report what would change, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// landing-ttl: run even if another run holds the lock (LANDING_TTL_LOCK_KEY).
        #[arg(long)]
        force: bool,
    },
    /// List, run, pause or resume the durable schedules (like `/admin/schedules`).
    Schedules {
        #[command(subcommand)]
        action: ScheduleAction,
    },
}

#[derive(Subcommand)]
enum ScheduleAction {
    /// Every schedule with its next and last runs, as JSON lines.
    List,
    /// Create one task of the schedule now (its cadence is unchanged); print it.
    Run { id: String },
    /// Stop the schedule's ticks (kept across restarts until the configuration changes).
    Pause { id: String },
    /// Start the schedule's ticks again, from its next tick (ticks missed while paused are
    /// not run).
    Resume { id: String },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OnceJob {
    /// Refresh the director KPI views and pre-warm the report caches.
    KpiRefresh,
    /// Move event landings active → archived → expired by their TTL (seeds/001).
    LandingTtl,
}

/// `worker run-once <job>`: enqueue, then wait on the task row.
async fn run_once(
    cfg: &worker::WorkerConfig,
    job: OnceJob,
    timeout: u64,
    params: serde_json::Value,
) -> anyhow::Result<bool> {
    use engine::{
        enqueue::{Enqueued, Request},
        store, KindInfo,
    };
    let kind = match job {
        OnceJob::KpiRefresh => KindInfo::of::<jobs::kinds::kpi_refresh::KpiRefresh>(),
        OnceJob::LandingTtl => KindInfo::of::<jobs::kinds::landing_ttl::LandingTtl>(),
    };
    let (pool, enqueuer) = connect(cfg).await?;
    let rec = match enqueuer
        .enqueue(Request {
            kind,
            params,
            requester: "cli",
            idempotency_key: None,
            request_id: None,
            run_at: None,
        })
        .await?
    {
        Enqueued::Created(rec) | Enqueued::Replayed(rec) | Enqueued::Conflict(rec) => rec,
    };
    tracing::info!(task.id = %rec.id, "task created; waiting for a worker to run it");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(timeout);
    loop {
        let rec = store::get(&pool, rec.id, None)
            .await?
            .ok_or_else(|| anyhow::anyhow!("task vanished"))?;
        if rec.status().is_terminal() {
            println!(
                "{}",
                serde_json::json!({ "taskId": rec.id, "status": rec.status, "attempts": rec.attempts,
                                    "result": rec.result, "error": rec.error })
            );
            return Ok(rec.status() == engine::TaskStatus::Completed);
        }
        if tokio::time::Instant::now() > deadline {
            println!(
                "{}",
                serde_json::json!({ "taskId": rec.id, "status": rec.status, "timedOut": true })
            );
            return Ok(false);
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// A small pool (migrated) and an enqueuer, for the one-shot commands.
async fn connect(
    cfg: &worker::WorkerConfig,
) -> anyhow::Result<(sqlx::PgPool, engine::enqueue::Enqueuer)> {
    let core = &cfg.core;
    let pool = engine::db::connect(&core.database_url, 2, cfg.statement_timeout).await?;
    jobs::db::migrate(&pool).await?;
    let redis =
        engine::redis_conn::connect_with_retry(&core.redis_url, std::time::Duration::from_secs(10))
            .await?;
    let transport = engine::transport::MessageQueue::new(
        redis,
        engine::redis_conn::Keys::new(core.redis_prefix.clone()),
        core.queue_max_ready,
    );
    let enqueuer = engine::enqueue::Enqueuer::new(pool.clone(), transport, core.task_ttl);
    Ok((pool, enqueuer))
}

/// `worker schedules …`: exit 0 when done, 1 when the schedule does not exist.
async fn schedules(cfg: &worker::WorkerConfig, action: ScheduleAction) -> anyhow::Result<bool> {
    use engine::schedule::{store, SchedulePatch, Ticker};
    let (pool, enqueuer) = connect(cfg).await?;
    // The configured schedules exist even before a worker ever started.
    store::upsert_config(
        &pool,
        &jobs::schedules::builtin(&cfg.core)?,
        chrono::Utc::now(),
    )
    .await?;
    let pause = |paused| SchedulePatch {
        paused: Some(paused),
        ..Default::default()
    };
    let (id, patch) = match action {
        ScheduleAction::List => {
            for schedule in store::list(&pool).await? {
                println!("{}", serde_json::to_string(&schedule)?);
            }
            return Ok(true);
        }
        ScheduleAction::Run { id } => {
            let kinds = jobs::kinds::registry()?;
            let ticker = Ticker::new(pool, enqueuer, kinds.iter().map(|k| k.info()));
            return match ticker.run_now(&id, "cli", None, None).await? {
                None => {
                    eprintln!("no schedule {id:?}");
                    Ok(false)
                }
                Some(Err(e)) => {
                    eprintln!("{e}");
                    Ok(false)
                }
                Some(Ok(outcome)) => {
                    let (engine::enqueue::Enqueued::Created(rec)
                    | engine::enqueue::Enqueued::Replayed(rec)
                    | engine::enqueue::Enqueued::Conflict(rec)) = outcome;
                    println!(
                        "{}",
                        serde_json::json!({ "taskId": rec.id, "kind": rec.kind, "status": rec.status })
                    );
                    Ok(true)
                }
            };
        }
        ScheduleAction::Pause { id } => (id, pause(true)),
        ScheduleAction::Resume { id } => (id, pause(false)),
    };
    match store::update(&pool, &id, &patch, chrono::Utc::now()).await {
        Ok(schedule) => {
            println!("{}", serde_json::to_string(&schedule)?);
            Ok(true)
        }
        Err(store::PatchError::NotFound(_)) => {
            eprintln!("no schedule {id:?}");
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

/// `worker health`: reads WORKER_HEALTH_FILE only (no configuration, no connection) and exits
/// 0 (healthy), 1 (not), or 2 (no file configured).
fn health_probe(ready: bool, max_age_seconds: u64) -> ! {
    let Some(path) = jobs::config::var("WORKER_HEALTH_FILE") else {
        eprintln!("worker health: WORKER_HEALTH_FILE is not set");
        std::process::exit(2);
    };
    let max_age = std::time::Duration::from_secs(max_age_seconds);
    match worker::health::check(std::path::Path::new(&path), max_age, ready) {
        Ok(()) => std::process::exit(0),
        Err(why) => {
            eprintln!("worker health: {why}");
            std::process::exit(1);
        }
    }
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The probe runs every few seconds in every replica: answered before the logging set-up and
    // the configuration are read.
    if let Some(Command::Health {
        ready,
        max_age_seconds,
    }) = cli.command
    {
        health_probe(ready, max_age_seconds);
    }
    jobs::telemetry::init("worker");
    let cfg = match worker::WorkerConfig::from_env() {
        Ok(cfg) => cfg,
        Err(e) => {
            tracing::error!(error = %e, "invalid configuration");
            std::process::exit(2);
        }
    };
    match cli.command.unwrap_or(Command::Run) {
        Command::Migrate => {
            let pool =
                engine::db::connect(&cfg.core.database_url, 2, cfg.statement_timeout).await?;
            jobs::db::migrate(&pool).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::EnsureStorage => match jobs::storage::Store::from_config(&cfg.core.exports)? {
            jobs::storage::Store::S3(s3) => {
                s3.ensure_bucket().await?;
                tracing::info!("S3 bucket ready");
                Ok(())
            }
            jobs::storage::Store::Local(_) => {
                tracing::info!(dir = %cfg.core.exports.dir.display(), "local export directory ready");
                Ok(())
            }
        },
        Command::Schedules { action } => {
            let ok = schedules(&cfg, action).await?;
            std::process::exit(if ok { 0 } else { 1 });
        }
        Command::Health {
            ready,
            max_age_seconds,
        } => health_probe(ready, max_age_seconds),
        Command::RunOnce {
            job,
            timeout,
            dry_run,
            force,
        } => {
            if (dry_run || force) && job != OnceJob::LandingTtl {
                eprintln!("--dry-run and --force apply to landing-ttl only");
                std::process::exit(2);
            }
            let params = match job {
                OnceJob::LandingTtl => {
                    serde_json::json!({ "trigger": "cli", "dryRun": dry_run, "force": force })
                }
                OnceJob::KpiRefresh => serde_json::json!({ "trigger": "cli" }),
            };
            let ok = run_once(&cfg, job, timeout, params).await?;
            std::process::exit(if ok { 0 } else { 1 });
        }
        Command::Run => {
            let shutdown = CancellationToken::new();
            let trigger = shutdown.clone();
            tokio::spawn(async move {
                shutdown_signal().await;
                trigger.cancel();
            });
            worker::run(cfg, jobs::kinds::registry()?, shutdown).await
        }
    }
}
