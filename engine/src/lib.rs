//! The task engine: durable tasks in Postgres, tiny messages over apalis-redis, and the
//! runner that executes them, knowing nothing of tickets (DESIGN §1, §3, §4).
//!
//! - [`task`]: the task model ([`TaskStatus`], [`TaskRecord`]); [`store`]: every state
//!   transition, one conditional statement each (the transition table is in its docs);
//! - [`kind`]: the [`Kind`] trait a product implements per job kind, and the [`Registry`];
//! - [`enqueue`]: creating tasks; [`transport`]: the messages, the relay that pushes due
//!   tasks, the consumer of a queue, wake-ups and the janitor; [`cron`]: periodic ticks;
//! - [`runner`]: claim → handler → outcome, with leases, timeouts and batching;
//!   [`context`]: what a handler sees ([`TaskContext`]) and how it ends ([`Done`],
//!   [`JobError`]); [`retry`], [`progress`], [`metrics`].
//!
//! The product's own state (its integrations, its configuration) travels as the type
//! parameter `S` of [`Runtime`], [`TaskContext`] and [`Registry`]: the engine never names it.

pub mod context;
pub mod cron;
pub mod db;
pub mod enqueue;
pub mod env;
pub mod kind;
pub mod metrics;
pub mod progress;
pub mod redis_conn;
pub mod retry;
pub mod runner;
pub mod store;
pub mod stored_json;
pub mod task;
pub mod transport;

pub use context::{Done, Effect, JobError, Runtime, TaskContext};
pub use env::EngineConfig;
pub use kind::{Kind, KindInfo, KindSpec, Registry};
pub use task::{AttemptError, TaskRecord, TaskStatus};
