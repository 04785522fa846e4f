//! Business logic shared by kinds and api reads.

pub mod ledger;
pub mod money;
pub mod report_cache;
pub mod reports;
