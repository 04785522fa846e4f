use serde_json::{json, Value};

use crate::payments::{stripe::parse_event, PaymentStatus, WebhookError};

fn event(kind: &str, object: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": "evt_3Q",
        "object": "event",
        "type": kind,
        "data": {"object": object},
    }))
    .unwrap()
}

fn intent(id: &str) -> Value {
    json!({"id": id, "object": "payment_intent", "amount": 125_050, "currency": "mxn"})
}

#[test]
fn stripe_payment_intent_events_map_to_statuses() {
    let cases = [
        ("payment_intent.succeeded", PaymentStatus::Succeeded),
        ("payment_intent.processing", PaymentStatus::Processing),
        ("payment_intent.payment_failed", PaymentStatus::Failed),
        ("payment_intent.canceled", PaymentStatus::Canceled),
        ("payment_intent.requires_action", PaymentStatus::Pending),
        ("payment_intent.created", PaymentStatus::Pending),
    ];
    for (kind, status) in cases {
        let body = event(kind, intent("pi_42"));
        let parsed = parse_event(&body).unwrap();
        assert_eq!(parsed.event_id, "evt_3Q", "{kind}");
        assert_eq!(parsed.kind, kind);
        assert_eq!(parsed.provider_ref, "pi_42", "{kind}");
        assert_eq!(parsed.status, Some(status), "{kind}");
        assert_eq!(parsed.amount_cents, Some(125_050), "{kind}");
        assert_eq!(parsed.raw, serde_json::from_slice::<Value>(&body).unwrap());
    }
}

#[test]
fn stripe_charge_refunded_points_at_its_payment_intent() {
    let charge = json!({
        "id": "ch_9", "object": "charge", "amount": 125_050, "amount_refunded": 125_050,
        "refunded": true, "payment_intent": "pi_42",
    });
    let parsed = parse_event(&event("charge.refunded", charge)).unwrap();
    assert_eq!(parsed.provider_ref, "pi_42");
    assert_eq!(parsed.status, Some(PaymentStatus::Refunded));
    assert_eq!(parsed.amount_cents, Some(125_050));

    // An expanded intent is read by its id.
    let expanded = json!({
        "id": "ch_9", "amount": 500, "refunded": true, "payment_intent": {"id": "pi_43"},
    });
    let parsed = parse_event(&event("charge.refunded", expanded)).unwrap();
    assert_eq!(parsed.provider_ref, "pi_43");
    assert_eq!(parsed.status, Some(PaymentStatus::Refunded));
}

#[test]
fn stripe_partial_refund_or_a_charge_without_intent_moves_nothing() {
    let partial = json!({
        "id": "ch_9", "amount": 125_050, "amount_refunded": 50_000, "refunded": false,
        "payment_intent": "pi_42",
    });
    let parsed = parse_event(&event("charge.refunded", partial)).unwrap();
    assert_eq!(parsed.provider_ref, "pi_42");
    assert_eq!(parsed.status, None);

    let legacy = json!({"id": "ch_old", "amount": 100, "refunded": true, "payment_intent": null});
    let parsed = parse_event(&event("charge.refunded", legacy)).unwrap();
    assert_eq!(parsed.provider_ref, "ch_old");
    assert_eq!(parsed.status, None);
}

#[test]
fn stripe_unknown_event_types_are_acknowledged_without_a_status() {
    for kind in [
        "customer.created",
        "payment_intent.amount_capturable_updated",
        "charge.succeeded",
    ] {
        let parsed = parse_event(&event(kind, json!({"id": "obj_1", "amount": 7}))).unwrap();
        assert_eq!(parsed.status, None, "{kind}");
        assert_eq!(parsed.provider_ref, "obj_1");
        assert_eq!(parsed.event_id, "evt_3Q");
    }
    // An object without an id is still acknowledged when nothing moves.
    let parsed = parse_event(&event("balance.available", json!({"available": []}))).unwrap();
    assert_eq!((parsed.status, parsed.provider_ref.as_str()), (None, ""));
}

#[test]
fn stripe_malformed_events_are_refused() {
    let cases: [&[u8]; 5] = [
        b"not json",
        br#"{"type":"payment_intent.succeeded","data":{"object":{"id":"pi_1"}}}"#,
        br#"{"id":"evt_1","data":{"object":{"id":"pi_1"}}}"#,
        br#"{"id":"evt_1","type":"payment_intent.succeeded","data":{}}"#,
        br#"{"id":"evt_1","type":"payment_intent.succeeded","data":{"object":{"amount":1}}}"#,
    ];
    for body in cases {
        assert!(
            matches!(parse_event(body), Err(WebhookError::Malformed(_))),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}
