//! The kinds the api creates and the route that creates each: the handlers take their kind
//! from here, and a test holds this table, the worker's registry and the OpenAPI document
//! together (a kind registered but reachable from no route, or a route missing from the
//! document, fails it).

use engine::KindInfo;
use jobs::kinds::{
    assignment::Assignment, delivery::Delivery, delivery_bulk::DeliveryBulk,
    kpi_refresh::KpiRefresh, payment::Payment, payment_intent::PaymentIntent,
    payment_webhook::PaymentWebhook, ping::Ping, report_export::ReportExport,
    wa_inbound::WaInbound,
};

/// A kind and the route (method and path, as in the document) that enqueues it.
#[derive(Debug, Clone, Copy)]
pub struct Trigger {
    pub kind: KindInfo,
    pub method: &'static str,
    pub path: &'static str,
}

const fn trigger(kind: KindInfo, method: &'static str, path: &'static str) -> Trigger {
    Trigger { kind, method, path }
}

pub const ASSIGNMENT: Trigger = trigger(KindInfo::of::<Assignment>(), "post", "/director/assign");
pub const PAYMENT: Trigger = trigger(KindInfo::of::<Payment>(), "post", "/director/payments");
pub const KPI_REFRESH: Trigger = trigger(
    KindInfo::of::<KpiRefresh>(),
    "post",
    "/director/kpis/refresh",
);
pub const REPORT_EXPORT: Trigger = trigger(
    KindInfo::of::<ReportExport>(),
    "post",
    "/director/reports/exports",
);
pub const DELIVERY: Trigger = trigger(
    KindInfo::of::<Delivery>(),
    "post",
    "/events/{event_id}/guests/{guest_id}/send",
);
pub const DELIVERY_BULK: Trigger = trigger(
    KindInfo::of::<DeliveryBulk>(),
    "post",
    "/events/{event_id}/deliveries",
);
pub const WA_INBOUND: Trigger = trigger(KindInfo::of::<WaInbound>(), "post", "/wa/webhook");
pub const PAYMENT_INTENT: Trigger =
    trigger(KindInfo::of::<PaymentIntent>(), "post", "/payments/intent");
pub const PAYMENT_WEBHOOK: Trigger = trigger(
    KindInfo::of::<PaymentWebhook>(),
    "post",
    "/payments/webhook/{provider}",
);
pub const PING: Trigger = trigger(KindInfo::of::<Ping>(), "post", "/admin/ping");

pub const ALL: [Trigger; 10] = [
    ASSIGNMENT,
    PAYMENT,
    KPI_REFRESH,
    REPORT_EXPORT,
    DELIVERY,
    DELIVERY_BULK,
    WA_INBOUND,
    PAYMENT_INTENT,
    PAYMENT_WEBHOOK,
    PING,
];
