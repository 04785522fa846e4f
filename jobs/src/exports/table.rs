//! The shape of an export: typed columns and cells, so each writer renders them its own way
//! (CSV: exact text; XLSX: numbers as numbers, money formatted, timestamps as Excel dates).

use chrono::{DateTime, SecondsFormat, Utc};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Text,
    Int,
    /// Stored in cents; shown in major units with two decimals.
    Money,
    DateTime,
}

#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// The header: the field name of the synchronous report's JSON.
    pub name: &'static str,
    pub kind: ColumnKind,
    /// Width in characters for XLSX.
    pub width: u16,
}

pub const fn col(name: &'static str, kind: ColumnKind, width: u16) -> Column {
    Column { name, kind, width }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Text(String),
    Uuid(Uuid),
    Int(i64),
    /// Cents.
    Money(i64),
    DateTime(DateTime<Utc>),
}

pub type Row = Vec<Cell>;

/// Cents as an exact decimal in major units: `-1234` → `-12.34`.
pub fn cents_text(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// The same text as the JSON reports give (chrono's serde form).
pub fn timestamp_text(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Excel's serial date (days since 1899-12-30, fractions for the time of day), UTC.
pub fn excel_serial(t: &DateTime<Utc>) -> f64 {
    const UNIX_EPOCH_SERIAL: f64 = 25_569.0;
    UNIX_EPOCH_SERIAL + t.timestamp_micros() as f64 / 86_400_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cents_render_exactly() {
        assert_eq!(cents_text(0), "0.00");
        assert_eq!(cents_text(5), "0.05");
        assert_eq!(cents_text(-1234), "-12.34");
        assert_eq!(cents_text(150_000), "1500.00");
        assert_eq!(cents_text(i64::MIN), "-92233720368547758.08");
    }

    #[test]
    fn excel_serial_of_known_dates() {
        let t = DateTime::parse_from_rfc3339("2024-01-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        // 2024-01-01 is serial 45292 in Excel's 1900 date system.
        assert!((excel_serial(&t) - 45_292.5).abs() < 1e-9);
    }
}
