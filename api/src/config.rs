//! Api settings, from the environment (see `.env.example`): `PORT`, `HOST`, `API_TOKENS`,
//! `API_BODY_LIMIT_BYTES`, plus the shared ones of [`jobs::Config`].

use std::net::{IpAddr, SocketAddr};

use jobs::config::{parsed, var, ConfigError};

use crate::auth::{Tokens, DEVELOPMENT_TOKENS};

#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub core: jobs::Config,
    pub bind: SocketAddr,
    pub tokens: Tokens,
    /// Largest request body accepted (413 above).
    pub body_limit: usize,
    /// Longest `?wait=` of a long-poll, in seconds.
    pub long_poll_max: u64,
}

impl ApiConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let core = jobs::Config::from_env()?;
        let port: u16 = parsed("PORT", 8080)?;
        let host: IpAddr = parsed("HOST", IpAddr::from([0, 0, 0, 0]))?;
        let tokens = match var("API_TOKENS") {
            Some(spec) => Tokens::parse(&spec).map_err(|message| ConfigError {
                name: "API_TOKENS".into(),
                message,
            })?,
            None => {
                tracing::warn!("API_TOKENS is not set: using the development tokens (demo-token, admin-token); set API_TOKENS in any shared environment");
                Tokens::parse(DEVELOPMENT_TOKENS).map_err(|message| ConfigError {
                    name: "API_TOKENS".into(),
                    message,
                })?
            }
        };
        Ok(Self {
            core,
            bind: SocketAddr::new(host, port),
            tokens,
            body_limit: parsed("API_BODY_LIMIT_BYTES", 64 * 1024)?,
            long_poll_max: 60,
        })
    }
}
