//! [`TestApp`]: one test's isolated world (schema, Redis prefix), the api's router over it,
//! and the in-process workers the test asked for.

use std::{
    ops::Deref,
    sync::{Arc, Mutex},
    time::Duration,
};

use api::{auth::Tokens, config::ApiConfigBuilder, AppState};
use axum::Router;
use engine::Registry;
use jobs::testing::TestEnv;
use worker::WorkerConfig;

use crate::{kinds::test_registry, workers::RunningWorker, DEFAULT_TOKENS};

/// How long [`TestApp::wait_for`] and [`TestApp::drain`] wait unless told otherwise: long
/// enough for retries with the test kinds' backoffs on a loaded 2-core machine.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(20);

type CoreSetting = Box<dyn FnOnce(&mut jobs::Config)>;
type ApiSetting = Box<dyn FnOnce(ApiConfigBuilder) -> ApiConfigBuilder>;
type StateSetting = Box<dyn FnOnce(&mut AppState, &TestEnv)>;
type WorkerSetting = Arc<dyn Fn(&mut WorkerConfig) + Send + Sync>;

/// A running test application. Derefs to its [`TestEnv`] (pool, keys, config, seeds).
///
/// Workers it owns are told to stop when it drops; [`TestApp::stop`] stops them and checks
/// that they shut down cleanly.
pub struct TestApp {
    // Declared before `env`: workers are told to stop before their schema is dropped.
    workers: Mutex<Vec<RunningWorker>>,
    pub env: TestEnv,
    pub router: Router,
    registry: Registry<jobs::Services>,
    worker_setting: Option<WorkerSetting>,
    pub wait_timeout: Duration,
}

impl Deref for TestApp {
    type Target = TestEnv;

    fn deref(&self) -> &TestEnv {
        &self.env
    }
}

impl TestApp {
    /// The api in development mode with [`DEFAULT_TOKENS`], no worker, no seed.
    pub async fn spawn() -> Self {
        Self::builder().spawn().await
    }

    pub fn builder() -> TestAppBuilder {
        TestAppBuilder::default()
    }

    /// The registry the app's workers run (the builder's, by default the standard kinds
    /// plus the test kinds of [`crate::kinds`]).
    pub fn registry(&self) -> &Registry<jobs::Services> {
        &self.registry
    }

    /// The worker settings the app's workers use for `queues` (eight slots each, short
    /// intervals), after the builder's [`TestAppBuilder::worker_settings`].
    pub fn worker_config(&self, queues: &[&str]) -> WorkerConfig {
        let mut config = crate::workers::worker_config(&self.env, queues);
        if let Some(setting) = &self.worker_setting {
            setting(&mut config);
        }
        config
    }

    /// Starts one more in-process worker for `queues` with the app's registry; the caller
    /// owns it (for tests that start, stop or kill workers themselves).
    pub fn start_worker(&self, queues: &[&str]) -> RunningWorker {
        RunningWorker::start(self.worker_config(queues), self.registry.clone())
    }

    /// Starts a worker the app owns: stopped by [`TestApp::stop`], told to stop when the
    /// app drops.
    pub fn add_worker(&self, queues: &[&str]) {
        let worker = self.start_worker(queues);
        self.owned_workers().push(worker);
    }

    fn owned_workers(&self) -> std::sync::MutexGuard<'_, Vec<RunningWorker>> {
        // A test that panicked while holding the lock is failing anyway; keep the list.
        self.workers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the app owns running workers ([`TestApp::drain`] starts some when not).
    pub fn has_workers(&self) -> bool {
        !self.owned_workers().is_empty()
    }

    /// Stops the app's workers and checks that each shut down without an error; the app's
    /// data stays readable.
    pub async fn stop(&self) {
        let workers = std::mem::take(&mut *self.owned_workers());
        for worker in workers {
            worker.stop().await;
        }
    }
}

/// Settings of a [`TestApp`]; every one has a default, so a test names only what matters to it.
#[must_use]
pub struct TestAppBuilder {
    redis_url: Option<String>,
    database_url: Option<String>,
    seed_demo: bool,
    tokens: String,
    core: Vec<CoreSetting>,
    api: Vec<ApiSetting>,
    state: Vec<StateSetting>,
    registry: Option<Registry<jobs::Services>>,
    queues: Vec<String>,
    replicas: usize,
    worker_setting: Option<WorkerSetting>,
    wait_timeout: Duration,
}

impl Default for TestAppBuilder {
    fn default() -> Self {
        Self {
            redis_url: None,
            database_url: None,
            seed_demo: false,
            tokens: DEFAULT_TOKENS.into(),
            core: Vec::new(),
            api: Vec::new(),
            state: Vec::new(),
            registry: None,
            queues: Vec::new(),
            replicas: 1,
            worker_setting: None,
            wait_timeout: DEFAULT_WAIT,
        }
    }
}

impl TestAppBuilder {
    /// Another Redis than `TEST_REDIS_URL` (fault tests run a [`crate::PrivateRedis`]).
    /// Runs against another Postgres server (a private one a fault test crashes): the URL
    /// of a database there, created when missing.
    pub fn database_url(mut self, url: impl Into<String>) -> Self {
        self.database_url = Some(url.into());
        self
    }

    pub fn redis_url(mut self, url: impl Into<String>) -> Self {
        self.redis_url = Some(url.into());
        self
    }

    /// Inserts the demo organizers and events ([`TestEnv::seed_demo`]).
    pub fn seed_demo(mut self) -> Self {
        self.seed_demo = true;
        self
    }

    /// The api's `API_TOKENS`, read as the (possibly changed) environment reads it.
    pub fn tokens(mut self, spec: impl Into<String>) -> Self {
        self.tokens = spec.into();
        self
    }

    /// Changes the shared settings (environment, providers, stores) before anything uses them.
    pub fn core(mut self, setting: impl FnOnce(&mut jobs::Config) + 'static) -> Self {
        self.core.push(Box::new(setting));
        self
    }

    /// Changes the api's settings beyond the tokens.
    pub fn api(
        mut self,
        setting: impl FnOnce(ApiConfigBuilder) -> ApiConfigBuilder + 'static,
    ) -> Self {
        self.api.push(Box::new(setting));
        self
    }

    /// Changes the api's state before the router is built (e.g. the event hub's limits).
    pub fn state(mut self, setting: impl FnOnce(&mut AppState, &TestEnv) + 'static) -> Self {
        self.state.push(Box::new(setting));
        self
    }

    /// The kinds the app's workers run.
    pub fn registry(mut self, registry: Registry<jobs::Services>) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Starts in-process workers for `queues` with the app.
    pub fn workers(mut self, queues: &[&str]) -> Self {
        self.queues = queues.iter().map(|q| q.to_string()).collect();
        self
    }

    /// How many workers (replicas) serve the queues of [`TestAppBuilder::workers`].
    pub fn replicas(mut self, replicas: usize) -> Self {
        self.replicas = replicas;
        self
    }

    /// Changes the settings of every worker the app starts.
    pub fn worker_settings(
        mut self,
        setting: impl Fn(&mut WorkerConfig) + Send + Sync + 'static,
    ) -> Self {
        self.worker_setting = Some(Arc::new(setting));
        self
    }

    /// How long waits and drains last before they fail.
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.wait_timeout = timeout;
        self
    }

    pub async fn spawn(self) -> TestApp {
        let redis_url = self.redis_url.unwrap_or_else(jobs::testing::redis_url);
        let mut env = match &self.database_url {
            Some(url) => TestEnv::with_services(url, &redis_url).await,
            None => TestEnv::with_redis(&redis_url).await,
        };
        for setting in self.core {
            setting(&mut env.config);
        }
        if self.seed_demo {
            env.seed_demo().await;
        }
        let tokens = Tokens::parse_for(&self.tokens, env.config.environment)
            .unwrap_or_else(|e| panic!("test tokens {:?}: {e}", self.tokens));
        let mut config = api::ApiConfig::builder(env.config.clone()).tokens(tokens);
        for setting in self.api {
            config = setting(config);
        }
        let mut state = AppState::new(config.build(), env.pool.clone(), env.redis.clone());
        for setting in self.state {
            setting(&mut state, &env);
        }
        let app = TestApp {
            workers: Mutex::new(Vec::new()),
            router: api::router(state),
            env,
            registry: self.registry.unwrap_or_else(test_registry),
            worker_setting: self.worker_setting,
            wait_timeout: self.wait_timeout,
        };
        if !self.queues.is_empty() {
            let queues: Vec<&str> = self.queues.iter().map(String::as_str).collect();
            for _ in 0..self.replicas {
                app.add_worker(&queues);
            }
        }
        app
    }
}
