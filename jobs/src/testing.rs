//! Test support (feature `testing`): every test gets its own Postgres schema and its own
//! Redis key prefix, so tests run in parallel against the real services without seeing
//! each other. `TEST_DATABASE_URL` and `TEST_REDIS_URL` point at the servers.

use std::{str::FromStr, time::Duration};

use redis::aio::ConnectionManager;
use sqlx::{postgres::PgConnectOptions, ConnectOptions, Connection, PgConnection, PgPool};
use uuid::Uuid;

use engine::{redis_conn::Keys, store, TaskRecord, TaskStatus};

use crate::config::Config;

pub fn database_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/taquilla_test".into())
}

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Creates the test database when missing (so plain `cargo test` works too).
async fn ensure_database(url: &str) {
    let options = PgConnectOptions::from_str(url).expect("TEST_DATABASE_URL");
    if options.connect().await.is_ok() {
        return;
    }
    let name = options
        .get_database()
        .unwrap_or("taquilla_test")
        .to_string();
    let mut admin = options
        .clone()
        .database("postgres")
        .connect()
        .await
        .expect("connect to the postgres database of TEST_DATABASE_URL");
    // A concurrent test may win the race: "already exists" is fine.
    let _ = sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .await;
    let _ = admin.close().await;
}

/// Drops schemas left by test runs that crashed more than an hour ago.
async fn sweep_stale(conn: &mut PgConnection) {
    let cutoff = chrono::Utc::now().timestamp() - 3600;
    let stale: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname ~ '^t_[0-9]+_[a-z0-9]+$' \
         AND split_part(nspname, '_', 2)::bigint < $1",
    )
    .bind(cutoff)
    .fetch_all(&mut *conn)
    .await
    .unwrap_or_default();
    for schema in stale {
        let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .execute(&mut *conn)
            .await;
    }
}

/// One test's isolated world.
pub struct TestEnv {
    pub schema: String,
    pub pool: PgPool,
    pub db_options: PgConnectOptions,
    pub redis_url: String,
    pub redis: ConnectionManager,
    pub keys: Keys,
    pub config: Config,
}

impl TestEnv {
    pub async fn new() -> Self {
        Self::with_redis(&redis_url()).await
    }

    /// Like [`TestEnv::new`] against a given Redis (fault tests run their own).
    pub async fn with_redis(redis_url: &str) -> Self {
        Self::with_services(&database_url(), redis_url).await
    }

    /// Like [`TestEnv::new`] against a given Postgres database URL and Redis (fault tests
    /// run their own servers).
    pub async fn with_services(base: &str, redis_url: &str) -> Self {
        let base = base.to_string();
        ensure_database(&base).await;
        let suffix = format!("{:016x}", rand::random::<u64>());
        let schema = format!("t_{}_{}", chrono::Utc::now().timestamp(), &suffix[..12]);
        let root = PgConnectOptions::from_str(&base).expect("TEST_DATABASE_URL");
        let mut admin = root.connect().await.expect("connect to TEST_DATABASE_URL");
        sweep_stale(&mut admin).await;
        sqlx::query(&format!("CREATE SCHEMA \"{schema}\""))
            .execute(&mut admin)
            .await
            .expect("create test schema");
        let _ = admin.close().await;
        let db_options = root.options([("search_path", schema.as_str())]);
        let pool = engine::db::connect_with(db_options.clone(), 16)
            .await
            .expect("test pool");
        crate::db::migrate(&pool).await.expect("migrations");
        let redis = engine::redis_conn::connect(redis_url)
            .await
            .expect("connect to TEST_REDIS_URL");
        // The schema travels in the URL too, for code that connects by itself (the worker,
        // child processes).
        let separator = if base.contains('?') { '&' } else { '?' };
        let database_url = format!("{base}{separator}options[search_path]={schema}");
        let config = Config {
            // The README's laptop defaults; tests of production behaviour set Production.
            environment: crate::config::Environment::Development,
            database_url,
            database_max_connections: 16,
            redis_url: redis_url.to_string(),
            redis_prefix: schema.clone(),
            queue_max_ready: 1000,
            queue_repush_after: Duration::from_secs(30),
            task_lease: Duration::from_secs(30),
            task_ttl: Duration::from_secs(86_400),
            ticket_premium_factor: 2,
            default_currency: "MXN".into(),
            director_cache_ttl: Duration::from_secs(45),
            director_report_cache_ttl: Duration::from_secs(45),
            kpi_refresh_interval: Duration::from_secs(1800),
            kpi_refresh_coalesce: Duration::from_secs(5),
            // Mock providers writing under the system temp dir, no rate limit; tests that
            // exercise a real client point these at their own servers.
            deliveries: crate::config::DeliveryConfig {
                outbox_dir: std::env::temp_dir().join(format!("taquilla-outbox-{schema}")),
                whatsapp_max_per_second: 0,
                email_max_per_second: 0,
                ..Default::default()
            },
            task_cleanup_interval: Duration::from_secs(86_400),
            // Local-disk store per test; tests of the S3 client set `s3` themselves.
            exports: crate::config::ExportConfig {
                dir: std::env::temp_dir().join(format!("taquilla-exports-{schema}")),
                scratch_dir: std::env::temp_dir().join(format!("taquilla-scratch-{schema}")),
                url_secret: Some(format!("test-secret-{schema}")),
                ..Default::default()
            },
            // Mock payments, with a per-test webhook secret; provider tests set their own.
            payments: crate::payments::config::PaymentsConfig {
                mock_webhook_secret: Some(format!("mock-secret-{schema}")),
                ..Default::default()
            },
            landing: crate::landing::LandingConfig::default(),
            schedule_time_zone: "UTC".into(),
            redemption_audit_retention_days: 90,
        };
        Self {
            keys: Keys::new(schema.clone()),
            schema,
            pool,
            db_options,
            redis_url: redis_url.to_string(),
            redis,
            config,
        }
    }

    /// Demo rows: organizers `org_demo`, `org_acme`; events `ev_demo` (standard) and
    /// `ev_premium` (premium).
    pub async fn seed_demo(&self) {
        sqlx::raw_sql(
            "INSERT INTO organizers (id, name) VALUES ('org_demo', 'Demo'), ('org_acme', 'Acme'); \
             INSERT INTO events (id, organizer_id, name, type) VALUES \
                 ('ev_demo', 'org_demo', 'Demo Fest', 'standard'), \
                 ('ev_premium', 'org_demo', 'Premium Night', 'premium');",
        )
        .execute(&self.pool)
        .await
        .expect("seed demo data");
    }

    pub async fn task(&self, id: Uuid) -> TaskRecord {
        store::get(&self.pool, id, None)
            .await
            .expect("read task")
            .expect("task exists")
    }

    /// Polls the task until `done(status)` holds; panics with the task's state on timeout.
    pub async fn wait_until(
        &self,
        id: Uuid,
        timeout: Duration,
        done: impl Fn(TaskStatus) -> bool,
    ) -> TaskRecord {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let rec = self.task(id).await;
            if done(rec.status()) {
                return rec;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "task {id} still {} after {timeout:?} (attempts {}, error {:?})",
                    rec.status, rec.attempts, rec.error
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn wait_finished(&self, id: Uuid, timeout: Duration) -> TaskRecord {
        self.wait_until(id, timeout, TaskStatus::is_terminal).await
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let schema = self.schema.clone();
        let options = self.db_options.clone().options([("search_path", "public")]);
        let redis_url = self.redis_url.clone();
        let prefix = self.keys.prefix().to_string();
        // Async clean-up from a synchronous drop: a short-lived runtime on its own thread.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut conn) = options.connect().await {
                    let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                        .execute(&mut conn)
                        .await;
                }
                if let Ok(client) = redis::Client::open(redis_url.as_str()) {
                    if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
                        let keys: Vec<String> = redis::cmd("KEYS")
                            .arg(format!("{prefix}*"))
                            .query_async(&mut conn)
                            .await
                            .unwrap_or_default();
                        for chunk in keys.chunks(500) {
                            let _: redis::RedisResult<()> =
                                redis::cmd("DEL").arg(chunk).query_async(&mut conn).await;
                        }
                    }
                }
            });
        })
        .join();
    }
}
