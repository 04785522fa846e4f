//! `sql_maintenance`: calls one database maintenance function chosen by name from a closed
//! allow-list ([`Function`]), the seeds/004 "Cron Jobs Recomendados". The name only picks a
//! variant; the SQL of each variant is a constant here, so no text from a task's params ever
//! reaches the database as SQL or as an identifier. The function returns the rows it
//! changed, and the task's result carries it.
//!
//! Params: `{"function": "expire_old_redemptions"}` (hourly) or
//! `{"function": "cleanup_redemption_audit_log", "retentionDays"?: 1–3650}` (weekly; default
//! `REDEMPTION_AUDIT_RETENTION_DAYS`, 90). An unknown or missing name fails the task for good,
//! naming the field; [`validate`] is the same check for a caller that answers 400.

use std::time::Duration;

use serde_json::{json, Value};

use engine::{retry::Backoff, Done, JobError, Kind};

use super::FieldError;
use crate::{queues, Ctx, Services, ServicesExt};

pub const NAME: &str = "sql_maintenance";

/// Bounds of `retentionDays` (those of `REDEMPTION_AUDIT_RETENTION_DAYS`).
pub const RETENTION_DAYS: std::ops::RangeInclusive<i64> =
    crate::config::REDEMPTION_AUDIT_RETENTION_DAYS;

/// The allow-list: every database function this kind may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// Pending redemptions past `code_expires_at` become `expired`.
    ExpireOldRedemptions,
    /// Audit rows older than the retention are deleted.
    CleanupRedemptionAuditLog,
}

impl Function {
    pub const ALL: [Function; 2] = [Self::ExpireOldRedemptions, Self::CleanupRedemptionAuditLog];

    pub fn name(self) -> &'static str {
        match self {
            Self::ExpireOldRedemptions => "expire_old_redemptions",
            Self::CleanupRedemptionAuditLog => "cleanup_redemption_audit_log",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// A validated call: the function and its argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    pub function: Function,
    /// `retentionDays` of the audit cleanup when given (else the configured default).
    pub retention_days: Option<i32>,
}

/// Checks a task's params (extra fields, such as a schedule's `trigger`, are ignored).
pub fn validate(params: &Value) -> Result<Call, FieldError> {
    let bad = |field, message: String| FieldError { field, message };
    let allowed = || {
        Function::ALL
            .iter()
            .map(|f| f.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let function = match params.get("function") {
        Some(Value::String(name)) => Function::from_name(name).ok_or_else(|| {
            bad(
                "function",
                format!(
                    "{name:?} is not an allowed maintenance function (allowed: {})",
                    allowed()
                ),
            )
        })?,
        Some(_) => return Err(bad("function", "must be a string".into())),
        None => {
            return Err(bad(
                "function",
                format!("is required (one of: {})", allowed()),
            ))
        }
    };
    let retention_days = match params.get("retentionDays") {
        None | Some(Value::Null) => None,
        Some(_) if function != Function::CleanupRedemptionAuditLog => {
            return Err(bad(
                "retentionDays",
                format!(
                    "only applies to {}",
                    Function::CleanupRedemptionAuditLog.name()
                ),
            ))
        }
        Some(v) => match v.as_i64().filter(|d| RETENTION_DAYS.contains(d)) {
            Some(d) => Some(d as i32),
            None => {
                return Err(bad(
                    "retentionDays",
                    format!(
                        "must be an integer between {} and {}",
                        RETENTION_DAYS.start(),
                        RETENTION_DAYS.end()
                    ),
                ))
            }
        },
    };
    Ok(Call {
        function,
        retention_days,
    })
}

/// The `sql_maintenance` kind.
pub struct SqlMaintenance;

impl Kind for SqlMaintenance {
    type State = Services;
    const NAME: &'static str = NAME;
    const QUEUE: &'static str = queues::MAINTENANCE;
    const MAX_ATTEMPTS: i32 = 3;
    const TIMEOUT: Duration = Duration::from_secs(15 * 60);
    const BACKOFF: Backoff = Backoff::new(Duration::from_secs(30), Duration::from_secs(600));

    async fn run(ctx: Ctx) -> Result<Done, JobError> {
        let raw: Value = ctx.params()?;
        let call =
            validate(&raw).map_err(|e| JobError::permanent("invalid_params", e.to_string()))?;
        let rows: i32 = match call.function {
            Function::ExpireOldRedemptions => {
                sqlx::query_scalar("SELECT expire_old_redemptions()")
                    .fetch_one(ctx.pool())
                    .await?
            }
            Function::CleanupRedemptionAuditLog => {
                let days = call
                    .retention_days
                    .unwrap_or(ctx.config().redemption_audit_retention_days);
                sqlx::query_scalar("SELECT cleanup_redemption_audit_log($1)")
                    .bind(days)
                    .fetch_one(ctx.pool())
                    .await?
            }
        };
        tracing::info!(
            function = call.function.name(),
            rows,
            "maintenance function done"
        );
        Ok(Done::Result(
            json!({ "function": call.function.name(), "rows": rows }),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_allow_listed_names_pass() {
        let ok = validate(&json!({"function": "expire_old_redemptions", "trigger": "cron"}));
        assert_eq!(ok.unwrap().function, Function::ExpireOldRedemptions);
        for bad in [
            json!({"function": "pg_sleep"}),
            json!({"function": "expire_old_redemptions(); DROP TABLE tasks; --"}),
            json!({"function": 7}),
            json!({}),
        ] {
            let e = validate(&bad).unwrap_err();
            assert_eq!(e.field, "function", "{bad}");
        }
    }

    #[test]
    fn retention_is_bounded_and_only_for_the_audit_cleanup() {
        let call =
            validate(&json!({"function": "cleanup_redemption_audit_log", "retentionDays": 30}));
        assert_eq!(call.unwrap().retention_days, Some(30));
        for bad in [
            json!({"function": "cleanup_redemption_audit_log", "retentionDays": 0}),
            json!({"function": "cleanup_redemption_audit_log", "retentionDays": "90"}),
            json!({"function": "expire_old_redemptions", "retentionDays": 30}),
        ] {
            assert_eq!(validate(&bad).unwrap_err().field, "retentionDays", "{bad}");
        }
    }
}
