//! taquilla's core: configuration, the task layer, the transport over apalis-redis, every
//! job kind and the domain logic they share. The `api` and `worker` binaries are thin
//! shells around this crate.

pub mod config;
pub mod db;
pub mod deliveries;
pub mod domain;
pub mod enqueue;
pub mod exports;
pub mod kinds;
pub mod metrics;
pub mod queue;
pub mod redis_conn;
pub mod storage;
pub mod stored_json;
pub mod task;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

pub use config::Config;
