//! The product's built-in schedules, from its configuration. The worker upserts them into the
//! engine's `schedules` table at start-up; from then on the table is the truth (operators list,
//! pause, edit and run them: `/admin/schedules`, `worker schedules`), and a configuration
//! change reaches the table only when the configuration itself changed.

use engine::{
    env::ConfigError,
    schedule::{Cadence, CadenceError, ScheduleSpec},
    KindInfo,
};
use serde_json::json;

use crate::{
    kinds::{
        kpi_refresh::KpiRefresh,
        landing_ttl::LandingTtl,
        reservation_release::ReservationRelease,
        sql_maintenance::{Function, SqlMaintenance},
        task_cleanup::TaskCleanup,
    },
    Config,
};

/// A cadence problem as a configuration error naming `variable`.
fn named(variable: &str) -> impl Fn(CadenceError) -> ConfigError + '_ {
    move |e| ConfigError {
        name: variable.to_string(),
        message: e.message,
    }
}

/// Every built-in schedule. A setting that does not make a valid cadence is a configuration
/// error at start-up (the variable is named), not a silent default.
pub fn builtin(config: &Config) -> Result<Vec<ScheduleSpec>, ConfigError> {
    let interval = |variable: &str, d: std::time::Duration| {
        Cadence::interval(d.as_secs() as i64).map_err(named(variable))
    };
    let zone = config.schedule_time_zone.as_str();
    let cron = |expr: &str| Cadence::cron(expr, zone).map_err(named("SCHEDULE_TIME_ZONE"));
    let landing = &config.landing;
    let sql = |function: Function| json!({ "function": function.name() });
    Ok(vec![
        ScheduleSpec::new(
            "kpi_refresh",
            KindInfo::of::<KpiRefresh>(),
            interval("KPI_REFRESH_INTERVAL_MINUTES", config.kpi_refresh_interval)?,
        ),
        ScheduleSpec::new(
            "task_cleanup",
            KindInfo::of::<TaskCleanup>(),
            interval(
                "TASK_CLEANUP_INTERVAL_MINUTES",
                config.task_cleanup_interval,
            )?,
        ),
        // seeds/001 "Jobs nocturnos": nightly; a night with no worker up runs it on return.
        ScheduleSpec::new(
            "landing_ttl",
            KindInfo::of::<LandingTtl>(),
            cron(&format!("{} {} * * *", landing.minute, landing.hour))?,
        ),
        // seeds/002: pending reservations past their hold, every minute.
        ScheduleSpec::new(
            "reservation_release",
            KindInfo::of::<ReservationRelease>(),
            Cadence::interval(60).map_err(named("reservation_release"))?,
        ),
        // seeds/004 "Cron Jobs Recomendados": hourly expiry, weekly audit-log cleanup.
        ScheduleSpec::new(
            "expire_old_redemptions",
            KindInfo::of::<SqlMaintenance>(),
            cron("0 * * * *")?,
        )
        .params(sql(Function::ExpireOldRedemptions)),
        ScheduleSpec::new(
            "cleanup_redemption_audit_log",
            KindInfo::of::<SqlMaintenance>(),
            cron("0 2 * * 0")?,
        )
        .params(sql(Function::CleanupRedemptionAuditLog)),
    ])
}
