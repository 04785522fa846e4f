//! The product's built-in schedules, from its configuration. The worker upserts them into the
//! engine's `schedules` table at start-up; from then on the table is the truth (operators list,
//! pause, edit and run them: `/admin/schedules`, `worker schedules`), and a configuration
//! change reaches the table only when the configuration itself changed.

use engine::{
    schedule::{Cadence, ScheduleSpec},
    KindInfo,
};

use crate::{
    kinds::{kpi_refresh::KpiRefresh, task_cleanup::TaskCleanup},
    Config,
};

/// Every built-in schedule. An interval that does not fit a schedule is a configuration
/// error at start-up (the variable is named), not a silent default.
pub fn builtin(config: &Config) -> Result<Vec<ScheduleSpec>, engine::env::ConfigError> {
    let interval = |name: &str, d: std::time::Duration| {
        Cadence::interval(d.as_secs() as i64).map_err(|e| engine::env::ConfigError {
            name: name.to_string(),
            message: e.message,
        })
    };
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
    ])
}
