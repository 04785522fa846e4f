//! The JSON answers of the routes that are not a task or an error, one type per route,
//! field for field what the handler writes (`routes::*`). Optional fields are the ones a
//! handler leaves out; nullable ones the ones it may write as `null`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use utoipa::{
    openapi::{
        schema::{AllOfBuilder, ArrayBuilder, ObjectBuilder, Schema, Type},
        RefOr,
    },
    ToSchema,
};

use super::shapes::{component, one_of_names, string};

fn health_status() -> ObjectBuilder {
    one_of_names(&["ok"])
}

/// `GET /healthz` (`routes::health::healthz`).
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct Health {
    #[schema(schema_with = health_status)]
    pub status: String,
    pub request_id: String,
}

fn readiness_status() -> ObjectBuilder {
    one_of_names(&["ready", "degraded", "unavailable"])
}

fn up_or_down() -> ObjectBuilder {
    one_of_names(&["up", "down"])
}

/// `GET /readyz` (`routes::health::readyz`): 200 while Postgres answers, 503 when not.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct Readiness {
    #[schema(schema_with = readiness_status)]
    pub status: String,
    pub checks: DependencyChecks,
    pub request_id: String,
}

#[derive(ToSchema)]
pub struct DependencyChecks {
    #[schema(schema_with = up_or_down)]
    pub postgres: String,
    #[schema(schema_with = up_or_down)]
    pub redis: String,
}

/// `POST /wa/webhook` (`routes::whatsapp::webhook`).
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct WebhookReceipt {
    pub received: bool,
    /// The `wa_inbound` task holding the payload (the first call's, for a redelivery).
    pub task_id: uuid::Uuid,
    /// Whether the events were already stored by an earlier call.
    pub duplicate: bool,
    pub request_id: String,
}

/// `GET /wa/session/{phone}` (`routes::whatsapp::session`).
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct WhatsappSession {
    /// The number normalized to E.164 (`+` and digits).
    pub phone: String,
    /// Whether the 24 h window of the last inbound message is still open.
    pub open: bool,
    pub last_inbound_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub request_id: String,
}

/// The paging of a listing.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct Page {
    pub page: i64,
    pub page_size: i64,
    pub total: i64,
    pub pages: i64,
}

/// One movement of an organizer's ledger.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct LedgerEntry {
    pub id: uuid::Uuid,
    pub organizer_id: String,
    pub event_id: Option<String>,
    pub entry_type: String,
    pub tickets: i32,
    pub tickets_equivalent: i32,
    pub amount_cents: i64,
    pub currency: String,
    /// The client's metadata (`{"unreadableJson": …}` when the stored JSON does not decode).
    pub metadata: Value,
    pub task_id: uuid::Uuid,
    pub created_at: DateTime<Utc>,
}

/// An organizer's totals in one currency.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct Balance {
    pub currency: String,
    pub tickets: i64,
    pub tickets_equivalent: i64,
    pub assigned_cents: i64,
    pub paid_cents: i64,
    /// Σ assignments − Σ payments.
    pub debt_cents: i64,
}

/// `GET /director/organizers/{id}/ledger` (`routes::reports::ledger`).
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct Ledger {
    pub organizer_id: String,
    /// Newest first, one page.
    pub data: Vec<LedgerEntry>,
    /// In the requested currency (default DEFAULT_CURRENCY).
    pub totals: Balance,
    pub debt_cents: i64,
    /// Every currency the organizer uses.
    pub balances: Vec<Balance>,
    pub meta: Page,
    pub request_id: String,
}

/// A task as operators list it: the task view with its requester.
fn admin_tasks() -> ArrayBuilder {
    ArrayBuilder::new().items(RefOr::T(Schema::AllOf(
        AllOfBuilder::new()
            .item(component("Task"))
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .property("requester", string())
                    .required("requester"),
            )
            .build(),
    )))
}

/// `GET /admin/tasks` (`routes::admin::list`).
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct AdminTaskPage {
    #[schema(schema_with = admin_tasks)]
    pub data: Value,
    pub meta: Page,
    pub request_id: String,
}

/// One queue's tasks by state (`engine::store::QueueStats`) and its messages in Redis.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct QueueDepth {
    pub queue: String,
    pub pending: i64,
    pub running: i64,
    pub retrying: i64,
    /// Pending or retrying, not due yet.
    pub scheduled: i64,
    pub failed: i64,
    pub dead: i64,
    pub oldest_pending_age_seconds: Option<f64>,
    /// Messages waiting in Redis; null when Redis does not answer.
    pub in_redis: Option<i64>,
    /// Paused: accepting tasks, none started until resumed.
    pub paused: bool,
    pub paused_at: Option<DateTime<Utc>>,
    pub paused_by: Option<String>,
}

/// `POST /admin/queues/{queue}/pause` and `/resume`.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct QueuePaused {
    pub queue: String,
    pub paused: bool,
    /// False when the queue was already in that state.
    pub changed: bool,
    pub request_id: String,
}

/// `GET /admin/queues` (`routes::admin::queues`).
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct QueueList {
    pub data: Vec<QueueDepth>,
    pub request_id: String,
}

/// `POST /admin/tasks/retry` (`routes::admin::retry_all`).
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct Redriven {
    /// How many tasks went back to pending.
    #[schema(minimum = 0)]
    pub redriven: u64,
    pub task_ids: Vec<uuid::Uuid>,
    pub request_id: String,
}

#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct WorkerQueue {
    pub queue: String,
    pub last_seen_at: Option<DateTime<Utc>>,
    /// How many tasks of this queue the process runs at once (unknown for a worker of an
    /// older version).
    pub concurrency: Option<i64>,
}

/// A worker process, from its apalis heartbeats and the tasks it runs.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct WorkerView {
    pub worker: String,
    pub alive: bool,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub queues: Vec<WorkerQueue>,
    pub running: i64,
    pub running_by_kind: BTreeMap<String, i64>,
}

/// `GET /admin/workers` (`routes::admin::workers`).
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct WorkerList {
    pub data: Vec<WorkerView>,
    pub request_id: String,
}

/// `POST /payments/webhook[/{provider}]` (`routes::payments`).
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct PaymentEventReceipt {
    pub received: bool,
    pub provider: String,
    pub event_id: String,
    /// The `payment_webhook` task that applies it (the first delivery's, for a redelivery).
    pub task_id: uuid::Uuid,
    /// Whether this event was already stored by an earlier delivery.
    pub duplicate: bool,
    pub request_id: String,
}

/// `GET /payments/{id}` (`routes::payments::get`).
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct PaymentView {
    pub id: uuid::Uuid,
    pub provider: String,
    pub provider_ref: String,
    pub organizer_id: Option<String>,
    pub amount_cents: i64,
    pub currency: String,
    /// pending, processing, succeeded, failed, canceled or refunded
    pub status: String,
    pub description: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// What a client needs to pay (client secret, checkout link).
    #[schema(value_type = Object)]
    pub client: serde_json::Value,
    pub ledger_entry_id: Option<uuid::Uuid>,
    /// The ledger entry that reversed it, once a recorded payment was refunded.
    pub refund_entry_id: Option<uuid::Uuid>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    /// The events applied to it, oldest first.
    #[schema(value_type = Vec<Object>)]
    pub history: Vec<serde_json::Value>,
    pub request_id: String,
}

/// The task a schedule created last.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct ScheduleLastRun {
    pub task_id: Option<uuid::Uuid>,
    /// The tick it stands for; `null` for a "run now".
    pub tick: Option<DateTime<Utc>>,
    pub at: Option<DateTime<Utc>>,
    /// The task's status now; `null` once it expired.
    pub status: Option<String>,
}

/// A schedule (`routes::schedules`): a cron expression (in `timeZone`) or an interval.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct ScheduleView {
    pub id: String,
    pub kind: String,
    pub params: Value,
    pub cron: Option<String>,
    pub interval_seconds: Option<i64>,
    pub time_zone: String,
    #[schema(schema_with = catch_up_policy)]
    pub catch_up: String,
    pub max_catch_up: i64,
    pub paused: bool,
    pub next_run_at: DateTime<Utc>,
    pub last_run: ScheduleLastRun,
    #[schema(schema_with = schedule_source)]
    pub source: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn catch_up_policy() -> ObjectBuilder {
    one_of_names(&["skip", "all"])
}
fn schedule_source() -> ObjectBuilder {
    one_of_names(&["config", "operator"])
}

/// `GET /admin/schedules`.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct ScheduleList {
    pub data: Vec<ScheduleView>,
    pub request_id: String,
}
