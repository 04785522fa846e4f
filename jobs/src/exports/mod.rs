//! Report exports (issue 4): the report rows as a CSV or XLSX file in the object store.
//! `table` types the cells, `source` streams them out of Postgres, `writer` turns them into
//! a file, `limiter` caps concurrent exports per organizer, `notify` mails the link. The job
//! itself is `kinds::report_export`.

pub mod limiter;
pub mod notify;
pub mod source;
pub mod table;
pub mod writer;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::domain::reports::{ReportFilter, Sort};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Xlsx,
}

impl Format {
    pub const NAMES: [&'static str; 2] = ["csv", "xlsx"];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "csv" => Some(Self::Csv),
            "xlsx" => Some(Self::Xlsx),
            _ => None,
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Xlsx => "xlsx",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Report {
    Ledger,
    TopOrganizers,
    TicketsUsage,
    DebtAging,
    Overview,
}

impl Report {
    pub const NAMES: [&'static str; 5] = [
        "ledger",
        "top-organizers",
        "tickets-usage",
        "debt-aging",
        "overview",
    ];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ledger" => Some(Self::Ledger),
            "top-organizers" => Some(Self::TopOrganizers),
            "tickets-usage" => Some(Self::TicketsUsage),
            "debt-aging" => Some(Self::DebtAging),
            "overview" => Some(Self::Overview),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// The normalized filters of an export, as stored in the task's params (the synchronous
/// reports' [`ReportFilter`] without paging: an export holds every row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filters {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub organizer_id: Option<String>,
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    #[serde(default)]
    pub statuses: Vec<String>,
    /// The reports are per currency (default `DEFAULT_CURRENCY`); the ledger export lists
    /// every currency unless one was asked for.
    pub currency: String,
    pub currency_requested: bool,
    pub sort: String,
    pub desc: bool,
    pub limit: Option<i64>,
}

/// Rows per "page" when an export reads a paged report: all of them.
const ALL_ROWS: i64 = 1_000_000_000;

impl Filters {
    pub fn from_query(q: &ReportFilter, currency_requested: bool) -> Self {
        Self {
            from: q.from,
            to: q.to,
            organizer_id: q.organizer_id.clone(),
            event_id: q.event_id.clone(),
            event_type: q.event_type.clone(),
            statuses: q.statuses.clone(),
            currency: q.currency.clone(),
            currency_requested,
            sort: q.sort.as_str().to_string(),
            desc: q.desc,
            limit: q.limit,
        }
    }

    /// The synchronous report's query for the same filters, every row on one page.
    pub fn to_query(&self) -> ReportFilter {
        let mut q = ReportFilter::new(&self.currency);
        q.from = self.from;
        q.to = self.to;
        q.organizer_id = self.organizer_id.clone();
        q.event_id = self.event_id.clone();
        q.event_type = self.event_type.clone();
        q.statuses = self.statuses.clone();
        q.sort = Sort::parse(&self.sort).unwrap_or(Sort::Tickets);
        q.desc = self.desc;
        q.limit = self.limit;
        q.page = 1;
        q.page_size = ALL_ROWS;
        q
    }
}

/// What `POST /director/reports/exports` enqueues.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportParams {
    pub report: Report,
    pub format: Format,
    pub filters: Filters,
    #[serde(default)]
    pub notify_emails: Vec<String>,
}

impl ExportParams {
    /// The download's name, e.g. `ledger-org_demo-2026-01-01_2026-01-31.xlsx`.
    pub fn filename(&self, task: uuid::Uuid) -> String {
        let f = &self.filters;
        let mut name = self.report.as_str().to_string();
        if let Some(org) = &f.organizer_id {
            name.push('-');
            name.push_str(&sanitize(org));
        }
        if f.from.is_some() || f.to.is_some() {
            let d = |d: Option<NaiveDate>| d.map(|d| d.to_string()).unwrap_or_default();
            name.push_str(&format!("-{}_{}", d(f.from), d(f.to)));
        }
        let id = task.simple().to_string();
        format!("{name}-{}.{}", &id[id.len() - 8..], self.format.extension())
    }
}

/// Keeps a name to `[A-Za-z0-9_-]` (storage keys and download names).
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Where an export's file lives in the store.
pub fn storage_key(task: uuid::Uuid, filename: &str) -> String {
    format!("{}{task}/{filename}", crate::storage::EXPORTS_PREFIX)
}
