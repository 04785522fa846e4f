//! Durable schedules: periodic work whose truth is the `schedules` table, not the code.
//!
//! - [`cadence`]: when a schedule fires (cron in a time zone, or an epoch-aligned interval);
//! - [`store`]: the rows — the product's built-in schedules upserted at start-up (an
//!   operator's pause or edit survives restarts unless the configuration itself changes),
//!   listing, an operator's patch;
//! - [`ticker`]: the loop every replica runs, with no leader: a due row is locked with
//!   `SKIP LOCKED`, and its tick's task and the next `next_run_at` are committed together,
//!   the task under the idempotency key `schedule:<id>:<tick>` (one task per tick); missed
//!   ticks are caught up by the schedule's [`CatchUp`] policy; and "run now".

pub mod cadence;
pub mod store;
pub mod ticker;

use serde_json::Value;

pub use cadence::{Cadence, CadenceError, CatchUp};
pub use store::{Schedule, SchedulePatch};
pub use ticker::Ticker;

use crate::task::KindInfo;

/// Requester of the tasks schedules create.
pub const REQUESTER: &str = "cron";

/// The most missed ticks an `all` schedule runs when it catches up, unless it says otherwise.
pub const DEFAULT_MAX_CATCH_UP: i32 = 24;

/// A schedule the product defines in its configuration, upserted at start-up.
#[derive(Debug, Clone)]
pub struct ScheduleSpec {
    /// Stable name, e.g. `kpi_refresh` (lower case, digits, `_ . : -`).
    pub id: String,
    pub kind: KindInfo,
    /// The task's params (the ticker adds `trigger`, `scheduleId` and `tick`).
    pub params: Value,
    pub cadence: Cadence,
    pub catch_up: CatchUp,
    pub max_catch_up: i32,
    /// Configured off (e.g. an interval of 0 in the environment): kept, listed, not run.
    pub paused: bool,
}

impl ScheduleSpec {
    pub fn new(id: &str, kind: KindInfo, cadence: Cadence) -> Self {
        Self {
            id: id.to_string(),
            kind,
            params: Value::Object(Default::default()),
            cadence,
            catch_up: CatchUp::Skip,
            max_catch_up: DEFAULT_MAX_CATCH_UP,
            paused: false,
        }
    }

    pub fn params(mut self, params: Value) -> Self {
        self.params = params;
        self
    }

    pub fn catch_up(mut self, policy: CatchUp) -> Self {
        self.catch_up = policy;
        self
    }

    pub fn paused(mut self, paused: bool) -> Self {
        self.paused = paused;
        self
    }

    /// The configuration as one comparable text: a replica writes its spec over the row only
    /// when this was never seen for the row (see the `schedules` migration).
    pub fn fingerprint(&self) -> String {
        format!(
            "kind={};params={};cron={};interval={};zone={};catch_up={};max={};paused={}",
            self.kind.name,
            self.params,
            self.cadence.expr().unwrap_or(""),
            self.cadence.interval_seconds().unwrap_or(0),
            self.cadence.zone_name(),
            self.catch_up.as_str(),
            self.max_catch_up,
            self.paused
        )
    }
}
