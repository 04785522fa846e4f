//! The task engine: durable tasks in Postgres, tiny messages over apalis-redis, and the
//! runner that executes them, knowing nothing of tickets (DESIGN §1, §3, §4).
//!
//! - [`task`]: the task model ([`TaskStatus`], [`TaskRecord`]); [`store`]: every state
//!   transition, one conditional statement each (the transition table is in its docs);
//! - [`kind`]: the [`Kind`] trait a product implements per job kind, and the [`Registry`];
//! - [`enqueue`]: creating tasks; [`transport`]: the messages, the relay that pushes due
//!   tasks, wake-ups and the janitor; [`consumer`]: a queue's apalis worker; [`schedule`]:
//!   durable schedules (cron or interval, catch-up, no leader); [`actions`]: cancel and
//!   re-drive, with the kinds' [`hooks`]; [`browse`]: the operators' filtered, keyset-paged
//!   reads of `tasks`;
//! - [`runner`]: claim → handler → outcome, with leases, timeouts and batching
//!   ([`batcher`]) and claims ahead of a queue's free [`slots`]; [`group`]: group commits
//!   of many tasks' effects;
//!   [`context`]: what a handler sees ([`TaskContext`]); [`outcome`]: how an attempt ends
//!   ([`Done`], [`JobError`]); [`retry`], [`progress`], [`metrics`];
//! - [`queue_metrics`]: the periodic per-queue log event of every worker.
//!
//! Modules depend downwards only (`tests/layering.rs` checks it): task, outcome, retry,
//! env, db, redis_conn, stored_json, slots → batcher, store, hooks, progress, metrics → group,
//! transport → enqueue → context → kind → runner, actions, schedule → consumer.
//!
//! The product's own state (its integrations, its configuration) travels as the type
//! parameter `S` of [`Runtime`], [`TaskContext`] and [`Registry`]: the engine never names it.

pub mod actions;
pub mod batcher;
pub mod browse;
pub mod consumer;
pub mod context;
pub mod db;
pub mod enqueue;
pub mod env;
pub mod group;
pub mod hooks;
pub mod kind;
pub mod metrics;
pub mod outcome;
pub mod progress;
pub mod queue_metrics;
pub mod redis_conn;
pub mod retry;
pub mod runner;
pub mod schedule;
pub mod slots;
pub mod store;
pub mod stored_json;
pub mod task;
pub mod transport;

pub use context::{Runtime, TaskContext};
pub use env::EngineConfig;
pub use group::GroupWrite;
pub use kind::{Kind, KindSpec, Registry};
pub use outcome::{Done, Effect, JobError};
pub use task::{AttemptError, Ended, KindInfo, TaskRecord, TaskStatus};
