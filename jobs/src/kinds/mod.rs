//! Job kinds: one module each, holding its params, validation, policy ([`engine::Kind`]'s
//! constants) and handler. Adding one is its module, one line in [`registry`] and, when
//! clients trigger it, one route in the api (README, "Adding a job kind").

pub mod assignment;
pub mod delivery;
pub mod delivery_bulk;
pub mod kpi_refresh;
pub mod landing_ttl;
pub mod noop;
pub mod payment;
pub mod payment_intent;
pub mod payment_webhook;
pub mod ping;
pub mod report_export;
pub mod reservation_release;
pub mod sql_maintenance;
pub mod task_cleanup;
pub mod wa_inbound;

use engine::{kind::DuplicateKind, JobError, Registry};

use crate::Services;

/// Every production kind. Fails on a name registered twice.
pub fn registry() -> Result<Registry<Services>, DuplicateKind> {
    Registry::default()
        .with::<assignment::Assignment>()?
        .with::<delivery::Delivery>()?
        .with::<delivery_bulk::DeliveryBulk>()?
        .with::<kpi_refresh::KpiRefresh>()?
        .with::<landing_ttl::LandingTtl>()?
        .with::<noop::Noop>()?
        .with::<payment::Payment>()?
        .with::<payment_intent::PaymentIntent>()?
        .with::<payment_webhook::PaymentWebhook>()?
        .with::<ping::Ping>()?
        .with::<report_export::ReportExport>()?
        .with::<reservation_release::ReservationRelease>()?
        .with::<sql_maintenance::SqlMaintenance>()?
        .with::<task_cleanup::TaskCleanup>()?
        .with::<wa_inbound::WaInbound>()
}

/// Kinds no route creates: `task_cleanup` and the seeds' periodic jobs (`landing_ttl`,
/// `reservation_release`, `sql_maintenance`) come from schedules and `worker run-once`,
/// `noop` from benchmarks and tests. Every other registered kind must have a route in the
/// api's enqueue table (a test holds the two together).
pub const NOT_FROM_HTTP: [&str; 5] = [
    noop::NAME,
    task_cleanup::NAME,
    landing_ttl::NAME,
    reservation_release::NAME,
    sql_maintenance::NAME,
];

/// A bad params object: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

/// The checks the seeds' periodic kinds make of their params when they run, for a caller
/// that stores or creates such a task over HTTP and must answer 400 naming the field (a
/// schedule's params): `landing_ttl` (`dryRun`, `force` booleans) and `sql_maintenance`
/// (`function` in the allow-list, `retentionDays`). Other kinds: no check here.
pub fn check_params(kind: &str, params: &serde_json::Value) -> Result<(), FieldError> {
    if !params.is_object() {
        return Err(FieldError {
            field: "params",
            message: "must be a JSON object".into(),
        });
    }
    match kind {
        landing_ttl::NAME => landing_ttl::Params::parse(params).map(drop),
        sql_maintenance::NAME => sql_maintenance::validate(params).map(drop),
        _ => Ok(()),
    }
}

/// The policy shared by kinds that write the director ledger: the assignments queue, several
/// attempts with a short backoff (the write and the completion commit together).
pub mod ledger_writer {
    use std::time::Duration;

    use engine::retry::Backoff;

    pub const QUEUE: &str = crate::queues::ASSIGNMENTS;
    pub const MAX_ATTEMPTS: i32 = 5;
    pub const TIMEOUT: Duration = Duration::from_secs(30);
    pub const BACKOFF: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
}

/// Fails the task for good when the organizer does not exist (no retry loop on a missing row).
pub(crate) async fn require_organizer(
    conn: &mut sqlx::PgConnection,
    organizer_id: &str,
) -> Result<(), JobError> {
    if crate::domain::ledger::organizer_exists(conn, organizer_id).await? {
        Ok(())
    } else {
        Err(organizer_not_found(organizer_id))
    }
}

/// The permanent failure of a ledger write for an organizer that does not exist.
pub(crate) fn organizer_not_found(organizer_id: &str) -> JobError {
    JobError::permanent(
        "organizer_not_found",
        format!("organizer {organizer_id:?} does not exist"),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn periodic_params_are_checked_naming_the_field() {
        assert!(check_params(landing_ttl::NAME, &json!({"dryRun": true, "tick": 1})).is_ok());
        let e = check_params(landing_ttl::NAME, &json!({"force": "yes"})).unwrap_err();
        assert_eq!(e.field, "force");
        let e = check_params(sql_maintenance::NAME, &json!({"function": "drop_all"})).unwrap_err();
        assert_eq!(e.field, "function");
        let e = check_params(reservation_release::NAME, &json!([1])).unwrap_err();
        assert_eq!(e.field, "params");
        assert!(check_params(reservation_release::NAME, &json!({})).is_ok());
    }
}
