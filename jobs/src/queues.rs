//! The product's queues (DESIGN §4): each kind names one, and a worker serves a chosen set.

pub const ASSIGNMENTS: &str = "assignments";
pub const REPORTS: &str = "reports";
pub const DELIVERIES: &str = "deliveries";
pub const WEBHOOKS: &str = "webhooks";
pub const MAINTENANCE: &str = "maintenance";

/// Every queue, in a stable order (operators and scrapers see the same series).
pub const ALL: [&str; 5] = [ASSIGNMENTS, REPORTS, DELIVERIES, WEBHOOKS, MAINTENANCE];
