//! The product's own Redis keys, under the deployment's prefix like the engine's
//! ([`engine::redis_conn::Keys`]): one list of every name we write.

use engine::redis_conn::Keys;

pub trait ProductKeys {
    /// Counter of one channel's sends in one rate-limit window (`deliveries::ratelimit`).
    fn rate_limit(&self, channel: &str, window: i64) -> String;
    /// Generation number of the director report cache: bumping it invalidates every entry.
    fn report_cache_generation(&self) -> String;
    /// Prefix of the director report cache entries.
    fn report_cache_prefix(&self) -> String;
}

impl ProductKeys for Keys {
    fn rate_limit(&self, channel: &str, window: i64) -> String {
        format!("{}:ratelimit:{channel}:{window}", self.prefix())
    }

    fn report_cache_generation(&self) -> String {
        format!("{}:director:gen", self.prefix())
    }

    fn report_cache_prefix(&self) -> String {
        format!("{}:director:", self.prefix())
    }
}
