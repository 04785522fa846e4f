//! taquilla's product: its job kinds, the domain logic they share (ledger, reports,
//! deliveries, exports), their integrations (SMTP, WhatsApp, S3) and its configuration. The
//! task engine underneath is the `engine` crate; the `api` and `worker` binaries are thin
//! shells around both.

pub mod config;
pub mod db;
pub mod deliveries;
pub mod domain;
pub mod exports;
pub mod kinds;
pub mod landing;
pub mod payments;
pub mod queues;
pub mod redis_keys;
pub mod redis_lock;
pub mod schedules;
pub mod services;
pub mod storage;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

pub use config::Config;
pub use services::{Ctx, Services, ServicesExt};
