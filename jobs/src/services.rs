//! What the product's handlers share besides the engine's resources: its configuration and
//! its integrations. It is the engine's `S` ([`engine::Runtime`]'s `state`); handlers reach
//! it through [`ServicesExt`] on their [`Ctx`].

use std::sync::Arc;

use engine::JobError;
use redis::aio::ConnectionManager;

use crate::{
    config::Config, deliveries::providers::Providers, domain::report_cache::ReportCache,
    storage::Store,
};

/// The context a taquilla handler gets.
pub type Ctx = engine::TaskContext<Services>;

pub struct Services {
    pub config: Config,
    pub report_cache: ReportCache,
    /// Outbound message providers (SMTP, WhatsApp) and their shared rate limiter.
    pub providers: Arc<Providers>,
    /// Where exports are stored; an error (local directory not writable) fails only the
    /// tasks that need it, with the reason.
    pub storage: Result<Store, String>,
    /// The HTTP client of payment providers (one connection pool; `PAYMENTS_PROVIDER_TIMEOUT_SECONDS`).
    pub payments_http: reqwest::Client,
    /// The end of the last KPI-refresh coalescing window this process scheduled a refresh
    /// for ([`crate::kinds::kpi_refresh::after_ledger_write`]): later writes in the same
    /// window need not ask Postgres again.
    pub kpi_refresh_window: std::sync::atomic::AtomicI64,
}

impl Services {
    /// The engine's runtime carrying these services: what a worker process (or a test) runs
    /// tasks with.
    pub fn runtime(
        pool: sqlx::PgPool,
        config: Config,
        redis: ConnectionManager,
    ) -> engine::Runtime<Services> {
        let engine_config = config.engine();
        let services = Self::new(config, redis.clone());
        engine::Runtime::new(pool, engine_config, redis, services)
    }

    pub fn new(config: Config, redis: ConnectionManager) -> Self {
        let keys = engine::redis_conn::Keys::new(config.redis_prefix.clone());
        Self {
            report_cache: ReportCache::new(redis.clone(), keys.clone()),
            providers: Arc::new(Providers::new(&config.deliveries, redis, keys)),
            payments_http: reqwest::Client::builder()
                .timeout(config.payments.provider_timeout)
                .build()
                .unwrap_or_default(),
            storage: Store::from_config(&config.exports).map_err(|e| {
                tracing::error!(error = %e, "export storage unavailable");
                e.to_string()
            }),
            kpi_refresh_window: Default::default(),
            config,
        }
    }
}

/// The product's services as seen from a handler's context.
pub trait ServicesExt {
    fn config(&self) -> &Config;
    fn report_cache(&self) -> &ReportCache;
    fn providers(&self) -> &Providers;
    /// The export store, or a retryable error saying why it is unavailable.
    fn storage(&self) -> Result<&Store, JobError>;
}

impl ServicesExt for Ctx {
    fn config(&self) -> &Config {
        &self.state().config
    }

    fn report_cache(&self) -> &ReportCache {
        &self.state().report_cache
    }

    fn providers(&self) -> &Providers {
        &self.state().providers
    }

    fn storage(&self) -> Result<&Store, JobError> {
        self.state()
            .storage
            .as_ref()
            .map_err(|e| JobError::retryable("storage_unavailable", e.clone()))
    }
}
