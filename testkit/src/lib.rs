//! The one test harness of taquilla, in the spirit of zero2prod's `spawn_app`.
//!
//! [`TestApp::spawn`] (or [`TestApp::builder`]) gives a test its own Postgres schema and
//! Redis prefix ([`jobs::testing::TestEnv`], the isolation layer), the api's router with a
//! known token set, and optionally in-process workers for chosen queues and a chosen
//! registry. Typed helpers call each endpoint and answer status + JSON; [`TestApp::wait_for`]
//! waits on the task's change notifications (as the api's long-poll does) instead of
//! sleeping in a loop; [`TestApp::drain`] runs the queues until nothing is left to do and
//! fails, listing them, if tasks are left.
//!
//! The integration tests of the api and the worker live in this crate's `tests/` (so the
//! harness can depend on both without a dev-dependency cycle).

mod app;
mod binary;
pub mod fixtures;
mod http;
pub mod kinds;
mod private_postgres;
mod services;
mod wait;
mod workers;

pub use app::{TestApp, TestAppBuilder};
pub use binary::binary;
pub use http::{send_request, Accepted, Reply};
pub use private_postgres::PrivatePostgres;
pub use services::{skipped, PrivateRedis, SmtpSink};
pub use workers::{spawn_worker_process, worker_command, worker_config, RunningWorker};

/// The requester `demo` (the README's development token).
pub const DEMO: &str = "demo-token";
/// Another requester, `other`, to show that tasks are private.
pub const OTHER: &str = "other-token";
/// The admin `ops`.
pub const ADMIN: &str = "admin-token";
/// The token set of [`TestApp::spawn`]: [`DEMO`], [`OTHER`] and [`ADMIN`].
pub const DEFAULT_TOKENS: &str = "demo-token:demo,other-token:other,admin-token:ops:admin";
