use serde_json::json;

use crate::payments::{conekta::parse_event, PaymentStatus, WebhookError};

fn event(kind: &str, object: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"id": "evt_9", "type": kind, "data": {"object": object}})).unwrap()
}

#[test]
fn conekta_order_events_map_to_statuses() {
    for (kind, expected) in [
        ("order.paid", PaymentStatus::Succeeded),
        ("order.pending_payment", PaymentStatus::Pending),
        ("order.expired", PaymentStatus::Canceled),
        ("order.canceled", PaymentStatus::Canceled),
        ("order.declined", PaymentStatus::Failed),
        ("order.refunded", PaymentStatus::Refunded),
    ] {
        let parsed = parse_event(&event(kind, json!({"id": "ord_1", "amount": 5000}))).unwrap();
        assert_eq!(parsed.event_id, "evt_9");
        assert_eq!(parsed.kind, kind);
        assert_eq!(parsed.provider_ref, "ord_1");
        assert_eq!(parsed.status, Some(expected), "{kind}");
        assert_eq!(parsed.amount_cents, Some(5000));
    }
}

#[test]
fn conekta_charge_events_name_the_order() {
    let parsed = parse_event(&event(
        "charge.paid",
        json!({"id": "chg_1", "order_id": "ord_7", "amount": 900}),
    ))
    .unwrap();
    assert_eq!(parsed.provider_ref, "ord_7");
    assert_eq!(parsed.status, Some(PaymentStatus::Succeeded));
    let refunded = parse_event(&event(
        "charge.refunded",
        json!({"id": "chg_1", "order_id": "ord_7"}),
    ))
    .unwrap();
    assert_eq!(refunded.provider_ref, "ord_7");
    assert_eq!(refunded.status, Some(PaymentStatus::Refunded));
    // A charge event that moves a payment without its order is unreadable.
    assert!(matches!(
        parse_event(&event("charge.paid", json!({"id": "chg_1"}))),
        Err(WebhookError::Malformed(_))
    ));
}

#[test]
fn conekta_ping_and_unknown_events_move_nothing() {
    let ping = parse_event(&event("webhook_ping", json!({}))).unwrap();
    assert_eq!(ping.status, None);
    let other = parse_event(&event("customer.created", json!({"id": "cus_1"}))).unwrap();
    assert_eq!(other.status, None);
    assert_eq!(other.provider_ref, "cus_1");
}

#[test]
fn conekta_malformed_events_are_refused() {
    for body in [
        b"not json".to_vec(),
        br#"{"type":"order.paid","data":{"object":{"id":"ord_1"}}}"#.to_vec(),
        br#"{"id":"evt_1","data":{"object":{"id":"ord_1"}}}"#.to_vec(),
        br#"{"id":"evt_1","type":"order.paid","data":{}}"#.to_vec(),
        br#"{"id":"evt_1","type":"order.paid","data":{"object":{"id":""}}}"#.to_vec(),
    ] {
        assert!(
            matches!(parse_event(&body), Err(WebhookError::Malformed(_))),
            "{}",
            String::from_utf8_lossy(&body)
        );
    }
}
