//! Director report cache in Redis: one key per report and normalized filter set, under a
//! generation number. A write bumps the generation (one INCR, however many keys exist), so
//! every cached report becomes unreachable at once and expires by its TTL. Best effort: when
//! Redis is down, reports are computed from Postgres.

use std::{future::Future, time::Duration};

use redis::{aio::ConnectionManager, Script};
use serde_json::Value;

use engine::redis_conn::Keys;

use crate::redis_keys::ProductKeys;

/// Reads the generation and the entry under it in one round trip.
const READ: &str = r#"
local gen = redis.call('GET', KEYS[1]) or '0'
return {gen, redis.call('GET', ARGV[1] .. gen .. ':' .. ARGV[2])}
"#;

#[derive(Clone)]
pub struct ReportCache {
    conn: ConnectionManager,
    keys: Keys,
}

/// Where a report came from (tests and logs want to know).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Cache,
    Database,
}

impl ReportCache {
    pub fn new(conn: ConnectionManager, keys: Keys) -> Self {
        Self { conn, keys }
    }

    fn generation_key(&self) -> String {
        self.keys.report_cache_generation()
    }

    fn entry_prefix(&self) -> String {
        self.keys.report_cache_prefix()
    }

    async fn read(&self, report: &str, key: &str) -> redis::RedisResult<(String, Option<String>)> {
        let mut conn = self.conn.clone();
        Script::new(READ)
            .key(self.generation_key())
            .arg(self.entry_prefix())
            .arg(format!("{report}:{key}"))
            .invoke_async(&mut conn)
            .await
    }

    /// Makes every cached director report stale (after any ledger write).
    pub async fn invalidate(&self) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        redis::cmd("INCR")
            .arg(self.generation_key())
            .query_async::<i64>(&mut conn)
            .await?;
        Ok(())
    }

    /// The cached JSON text of `report` for `key`, or `compute()` stored for `ttl`. A hit is
    /// returned as stored, never parsed: the api serves it with its request id spliced in.
    pub async fn get_or<F, Fut, E>(
        &self,
        report: &str,
        key: &str,
        ttl: Duration,
        compute: F,
    ) -> Result<(String, Source), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Value, E>>,
    {
        let generation = match self.read(report, key).await {
            Ok((_, Some(hit))) => return Ok((hit, Source::Cache)),
            Ok((generation, None)) => Some(generation),
            Err(e) => {
                tracing::debug!(error = %e, "report cache unavailable; reading Postgres");
                None
            }
        };
        let text = compute().await?.to_string();
        if let Some(generation) = generation {
            // Stored under the generation read before computing: if a write bumped it
            // meanwhile, this entry is already unreachable, never stale.
            let full = format!("{}{generation}:{report}:{key}", self.entry_prefix());
            let mut conn = self.conn.clone();
            let _: redis::RedisResult<()> = redis::cmd("SET")
                .arg(full)
                .arg(&text)
                .arg("EX")
                .arg(ttl.as_secs().max(1))
                .query_async(&mut conn)
                .await;
        }
        Ok((text, Source::Database))
    }
}
