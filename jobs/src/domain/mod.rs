//! Business logic shared by kinds and api reads.

pub mod ledger;
pub mod money;
