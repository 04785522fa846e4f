//! When a schedule fires: a cron expression read in a time zone, or a fixed interval aligned to
//! the Unix epoch (so every replica computes the same ticks without talking to the others).

use std::str::FromStr;

use chrono::{DateTime, SubsecRound as _, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use serde::{Deserialize, Serialize};

/// The longest interval accepted: a year.
pub const MAX_INTERVAL_SECONDS: i64 = 366 * 86_400;

/// What may be wrong with a cadence, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct CadenceError {
    pub field: &'static str,
    pub message: String,
}

fn problem(field: &'static str, message: impl Into<String>) -> CadenceError {
    CadenceError {
        field,
        message: message.into(),
    }
}

/// A schedule's rhythm.
#[derive(Debug, Clone, PartialEq)]
pub enum Cadence {
    /// Five fields (minute hour day-of-month month day-of-week) or six (with seconds first),
    /// evaluated in `zone`: "0 3 * * *" in America/Mexico_City is 03:00 there, DST included.
    Cron {
        expr: String,
        cron: Box<Cron>,
        zone: Tz,
    },
    /// Every `seconds`, at multiples of it since the epoch.
    Interval { seconds: i64 },
}

impl Cadence {
    /// Parses a cron expression and a time zone name (IANA, e.g. "UTC", "America/Mexico_City").
    pub fn cron(expr: &str, zone: &str) -> Result<Self, CadenceError> {
        let zone: Tz = zone
            .parse()
            .map_err(|_| problem("timeZone", format!("{zone:?} is not an IANA time zone")))?;
        let trimmed = expr.trim();
        if trimmed.is_empty() || trimmed.len() > 200 {
            return Err(problem(
                "cron",
                "must be a cron expression of 1 to 200 characters",
            ));
        }
        let cron = Cron::from_str(trimmed)
            .map_err(|e| problem("cron", format!("{trimmed:?} is not a cron expression: {e}")))?;
        let cadence = Self::Cron {
            expr: trimmed.to_string(),
            cron: Box::new(cron),
            zone,
        };
        // An expression that never fires ("0 0 30 2 *") would leave the schedule stuck.
        cadence
            .next_after(Utc::now())
            .ok_or_else(|| problem("cron", format!("{trimmed:?} never fires")))?;
        Ok(cadence)
    }

    pub fn interval(seconds: i64) -> Result<Self, CadenceError> {
        if !(1..=MAX_INTERVAL_SECONDS).contains(&seconds) {
            return Err(problem(
                "intervalSeconds",
                format!("must be between 1 and {MAX_INTERVAL_SECONDS}"),
            ));
        }
        Ok(Self::Interval { seconds })
    }

    /// The first tick strictly after `t`; `None` when a cron expression has no further match.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::Interval { seconds } => {
                let next = (t.timestamp().div_euclid(*seconds) + 1) * seconds;
                Utc.timestamp_opt(next, 0).single()
            }
            // croner counts in whole seconds: from 09:59:59.999 it would skip 10:00:00.
            Self::Cron { cron, zone, .. } => cron
                .find_next_occurrence(&t.trunc_subsecs(0).with_timezone(zone), false)
                .ok()
                .map(|local| local.with_timezone(&Utc)),
        }
    }

    /// The ticks in `(after, until]`, oldest first, at most `limit` of them: the **latest**
    /// ones when there are more (a catch-up runs the most recent missed ticks), with the count
    /// of those left out.
    pub fn ticks_between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> (Vec<DateTime<Utc>>, u64) {
        let limit = limit.max(1);
        if let Self::Interval { seconds } = self {
            // Arithmetic: a minute-long interval missed for a month is not walked tick by tick.
            let first = after.timestamp().div_euclid(*seconds) + 1;
            let last = until.timestamp().div_euclid(*seconds);
            if last < first {
                return (Vec::new(), 0);
            }
            let total = (last - first + 1) as u64;
            let start = last - (total.min(limit as u64) as i64) + 1;
            let ticks = (start..=last)
                .filter_map(|n| Utc.timestamp_opt(n * seconds, 0).single())
                .collect();
            return (ticks, total.saturating_sub(limit as u64));
        }
        let mut ticks = std::collections::VecDeque::with_capacity(limit);
        let mut skipped = 0u64;
        let mut t = after;
        while let Some(next) = self.next_after(t).filter(|n| *n <= until) {
            if ticks.len() == limit {
                ticks.pop_front();
                skipped += 1;
            }
            ticks.push_back(next);
            t = next;
        }
        (ticks.into(), skipped)
    }

    /// The cron expression, if this is one.
    pub fn expr(&self) -> Option<&str> {
        match self {
            Self::Cron { expr, .. } => Some(expr),
            Self::Interval { .. } => None,
        }
    }

    pub fn interval_seconds(&self) -> Option<i64> {
        match self {
            Self::Interval { seconds } => Some(*seconds),
            Self::Cron { .. } => None,
        }
    }

    /// The time zone a cron expression is read in ("UTC" for an interval).
    pub fn zone_name(&self) -> &str {
        match self {
            Self::Cron { zone, .. } => zone.name(),
            Self::Interval { .. } => "UTC",
        }
    }
}

/// What a schedule does about ticks that passed while no replica ran (a night-long outage).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// One run now for all of them, then the normal cadence (what BullMQ does).
    #[default]
    Skip,
    /// One run per missed tick, the latest `max_catch_up` of them.
    All,
}

impl CatchUp {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Skip => "skip",
            Self::All => "all",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "skip" => Some(Self::Skip),
            "all" => Some(Self::All),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn intervals_are_aligned_to_the_epoch() {
        let c = Cadence::interval(60).unwrap();
        assert_eq!(
            c.next_after(at("2026-12-01T10:00:30Z")),
            Some(at("2026-12-01T10:01:00Z"))
        );
        assert_eq!(
            c.next_after(at("2026-12-01T10:01:00Z")),
            Some(at("2026-12-01T10:02:00Z")),
            "strictly after"
        );
    }

    #[test]
    fn cron_is_read_in_its_time_zone() {
        // 03:00 in Mexico City (UTC-6, no DST since 2022) is 09:00 UTC.
        let c = Cadence::cron("0 3 * * *", "America/Mexico_City").unwrap();
        assert_eq!(
            c.next_after(at("2026-12-01T08:00:00Z")),
            Some(at("2026-12-01T09:00:00Z"))
        );
        assert_eq!(
            c.next_after(at("2026-12-01T09:00:00Z")),
            Some(at("2026-12-02T09:00:00Z"))
        );
        assert_eq!(
            c.next_after(at("2026-12-01T08:59:59.999Z")),
            Some(at("2026-12-01T09:00:00Z")),
            "a fraction of a second before a tick"
        );
        // Madrid changes to summer time on 2027-03-28: 03:00 local is then 01:00 UTC.
        let c = Cadence::cron("0 3 * * *", "Europe/Madrid").unwrap();
        assert_eq!(
            c.next_after(at("2027-03-29T00:00:00Z")),
            Some(at("2027-03-29T01:00:00Z"))
        );
    }

    #[test]
    fn bad_cadences_name_their_field() {
        assert_eq!(Cadence::cron("0 3 * *", "UTC").unwrap_err().field, "cron");
        assert_eq!(
            Cadence::cron("61 * * * *", "UTC").unwrap_err().field,
            "cron"
        );
        assert_eq!(Cadence::cron("", "UTC").unwrap_err().field, "cron");
        assert_eq!(
            Cadence::cron("0 3 * * *", "Mars/Olympus")
                .unwrap_err()
                .field,
            "timeZone"
        );
        assert_eq!(
            Cadence::cron("0 0 30 2 *", "UTC").unwrap_err().field,
            "cron"
        );
        assert_eq!(Cadence::interval(0).unwrap_err().field, "intervalSeconds");
        assert!(Cadence::interval(MAX_INTERVAL_SECONDS + 1).is_err());
    }

    #[test]
    fn missed_ticks_are_the_latest_ones_within_the_limit() {
        let c = Cadence::interval(60).unwrap();
        let (ticks, skipped) =
            c.ticks_between(at("2026-12-01T10:00:00Z"), at("2026-12-01T10:03:30Z"), 10);
        assert_eq!(
            ticks,
            vec![
                at("2026-12-01T10:01:00Z"),
                at("2026-12-01T10:02:00Z"),
                at("2026-12-01T10:03:00Z")
            ]
        );
        assert_eq!(skipped, 0);
        let (ticks, skipped) =
            c.ticks_between(at("2026-12-01T10:00:00Z"), at("2026-12-01T10:03:30Z"), 2);
        assert_eq!(
            ticks,
            vec![at("2026-12-01T10:02:00Z"), at("2026-12-01T10:03:00Z")]
        );
        assert_eq!(skipped, 1);
        let cron = Cadence::cron("*/15 * * * *", "UTC").unwrap();
        let (ticks, skipped) =
            cron.ticks_between(at("2026-12-01T10:00:00Z"), at("2026-12-01T11:00:00Z"), 3);
        assert_eq!(
            ticks,
            vec![
                at("2026-12-01T10:30:00Z"),
                at("2026-12-01T10:45:00Z"),
                at("2026-12-01T11:00:00Z")
            ]
        );
        assert_eq!(skipped, 1);
    }
}
