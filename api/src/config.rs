//! Api settings, from the environment (see `.env.example`): `PORT`, `HOST`, `API_TOKENS`,
//! `API_BODY_LIMIT_BYTES`, `METRICS_TOKEN`, `METRICS_CACHE_SECONDS`, the console's
//! `CONSOLE_SESSION_SECRET`, `CONSOLE_SECURE_COOKIE` and `CONSOLE_SESSION_HOURS`, plus the shared ones of
//! [`jobs::Config`] (`TAQUILLA_ENV` among them).

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use jobs::config::{parsed, seconds, var, ConfigError, Environment};

use crate::auth::{Tokens, DEVELOPMENT_TOKENS, PRODUCTION_MIN_TOKEN_LEN};

/// The longest `?wait=` of a long-poll, in seconds (the default of `long_poll_max`).
pub const LONG_POLL_MAX_SECONDS: u64 = 60;

#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub core: jobs::Config,
    pub bind: SocketAddr,
    pub tokens: Tokens,
    /// Largest request body accepted (413 above).
    pub body_limit: usize,
    /// Longest `?wait=` of a long-poll, in seconds.
    pub long_poll_max: u64,
    /// Who may scrape `/metrics` and how long its database figures are reused.
    pub security: Security,
    /// The operator console's session settings.
    pub console: crate::console::session::SessionConfig,
}

/// Settings of the edges added for production (issue 10); `Default` is what tests and a
/// laptop want: no metrics token, figures reused for 5 s.
#[derive(Clone)]
pub struct Security {
    /// `METRICS_TOKEN`: a bearer token that may read `/metrics` only (for a scraper that
    /// should not hold an operator token). In production `/metrics` needs it or an
    /// operator/admin token; in development it is open.
    pub metrics_token: Option<String>,
    /// `METRICS_CACHE_SECONDS`: how long one computation of the per-queue task counts (an
    /// aggregate over `tasks`) serves every scrape.
    pub metrics_cache_ttl: Duration,
}

impl Default for Security {
    fn default() -> Self {
        Self {
            metrics_token: None,
            metrics_cache_ttl: Duration::from_secs(5),
        }
    }
}

impl std::fmt::Debug for Security {
    // Never print the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field(
                "metrics_token",
                &self.metrics_token.as_ref().map(|_| "<set>"),
            )
            .field("metrics_cache_ttl", &self.metrics_cache_ttl)
            .finish()
    }
}

fn invalid(name: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        name: name.into(),
        message: message.into(),
    }
}

impl ApiConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let core = jobs::Config::from_env()?;
        let env = core.environment;
        let port: u16 = parsed("PORT", 8080)?;
        let host: IpAddr = parsed("HOST", IpAddr::from([0, 0, 0, 0]))?;
        let tokens = match (var("API_TOKENS"), env) {
            (Some(spec), _) => {
                Tokens::parse_for(&spec, env).map_err(|m| invalid("API_TOKENS", m))?
            }
            (None, Environment::Production) => {
                return Err(invalid(
                    "API_TOKENS",
                    format!(
                        "is required in production (TAQUILLA_ENV unset or production): \
                         comma-separated token:requester[:admin|:operator|:scopes=director+reports+deliveries], \
                         tokens of at least {PRODUCTION_MIN_TOKEN_LEN} characters; \
                         set TAQUILLA_ENV=development for the demo tokens"
                    ),
                ))
            }
            (None, Environment::Development) => {
                tracing::warn!("API_TOKENS is not set: using the development tokens (demo-token, admin-token)");
                Tokens::parse(DEVELOPMENT_TOKENS).map_err(|m| invalid("API_TOKENS", m))?
            }
        };
        let metrics_token = var("METRICS_TOKEN");
        if env.is_production()
            && metrics_token
                .as_ref()
                .is_some_and(|t| t.len() < PRODUCTION_MIN_TOKEN_LEN)
        {
            return Err(invalid(
                "METRICS_TOKEN",
                format!("needs at least {PRODUCTION_MIN_TOKEN_LEN} characters in production"),
            ));
        }
        let d = &core.deliveries;
        if env.is_production() && d.wa_webhook_secret.is_none() && d.wa_app_secret.is_none() {
            tracing::warn!(
                "neither WA_APP_SECRET nor WA_WEBHOOK_SECRET is set: POST /wa/webhook answers 401 to every call"
            );
        }
        let console = crate::console::session::SessionConfig::from_env(env, &core.database_url)?;
        tracing::info!(environment = env.as_str(), "api configuration loaded");
        Ok(Self::builder(core)
            .console(console)
            .bind(SocketAddr::new(host, port))
            .tokens(tokens)
            .body_limit(parsed("API_BODY_LIMIT_BYTES", DEFAULT_BODY_LIMIT)?)
            .metrics_token(metrics_token)
            .metrics_cache_ttl(seconds("METRICS_CACHE_SECONDS", 5)?)
            .build())
    }

    /// Settings for `core` with the documented defaults (no token accepted until
    /// [`ApiConfigBuilder::tokens`] says which), so callers that do not read the environment
    /// (tests, embedders) name only what they change.
    pub fn builder(core: jobs::Config) -> ApiConfigBuilder {
        ApiConfigBuilder {
            config: Self {
                core,
                bind: SocketAddr::from(([127, 0, 0, 1], 0)),
                tokens: Tokens::default(),
                body_limit: DEFAULT_BODY_LIMIT,
                long_poll_max: LONG_POLL_MAX_SECONDS,
                security: Security::default(),
                console: crate::console::session::SessionConfig::development(),
            },
        }
    }
}

/// `API_BODY_LIMIT_BYTES` when unset.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// Builds an [`ApiConfig`]: defaults from [`ApiConfig::builder`], one setter per setting.
#[derive(Debug, Clone)]
#[must_use]
pub struct ApiConfigBuilder {
    config: ApiConfig,
}

impl ApiConfigBuilder {
    pub fn bind(mut self, bind: SocketAddr) -> Self {
        self.config.bind = bind;
        self
    }

    pub fn tokens(mut self, tokens: Tokens) -> Self {
        self.config.tokens = tokens;
        self
    }

    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.config.body_limit = bytes;
        self
    }

    pub fn long_poll_max(mut self, seconds: u64) -> Self {
        self.config.long_poll_max = seconds;
        self
    }

    pub fn metrics_token(mut self, token: Option<String>) -> Self {
        self.config.security.metrics_token = token;
        self
    }

    pub fn metrics_cache_ttl(mut self, ttl: Duration) -> Self {
        self.config.security.metrics_cache_ttl = ttl;
        self
    }

    pub fn console(mut self, console: crate::console::session::SessionConfig) -> Self {
        self.config.console = console;
        self
    }

    pub fn build(self) -> ApiConfig {
        self.config
    }
}
