use serde_json::{json, Value};

use crate::payments::{wompi::parse_event, PaymentStatus, WebhookError};

fn event(transaction: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "event": "transaction.updated",
        "data": {"transaction": transaction},
        "environment": "prod",
        "signature": {"properties": ["transaction.id"], "checksum": "ab"},
        "timestamp": 1_764_560_000,
        "sent_at": "2026-12-01T03:33:20.000Z",
    }))
    .unwrap()
}

fn transaction(status: &str, link: Value, reference: &str) -> Value {
    json!({
        "id": "1234-1610641025-49201",
        "status": status,
        "amount_in_cents": 4_490_000,
        "reference": reference,
        "currency": "COP",
        "payment_link_id": link,
    })
}

#[test]
fn wompi_transaction_statuses_map_to_ours() {
    let cases = [
        ("APPROVED", Some(PaymentStatus::Succeeded)),
        ("PENDING", Some(PaymentStatus::Processing)),
        ("DECLINED", Some(PaymentStatus::Failed)),
        ("ERROR", Some(PaymentStatus::Failed)),
        ("VOIDED", Some(PaymentStatus::Canceled)),
        ("SOMETHING_NEW", None),
    ];
    for (wompi, ours) in cases {
        let body = event(transaction(wompi, json!("lnk_1"), "lnk_1_1764559999_Ab3"));
        let parsed = parse_event(&body).unwrap();
        assert_eq!(parsed.status, ours, "{wompi}");
        assert_eq!(parsed.kind, "transaction.updated");
        assert_eq!(parsed.provider_ref, "lnk_1", "{wompi}");
        assert_eq!(parsed.amount_cents, Some(4_490_000));
        assert_eq!(
            parsed.event_id,
            format!("1234-1610641025-49201:{wompi}:1764560000")
        );
        assert_eq!(parsed.raw, serde_json::from_slice::<Value>(&body).unwrap());
    }
}

#[test]
fn wompi_event_ids_are_stable_per_delivery_and_differ_per_state() {
    let approved = event(transaction("APPROVED", json!("lnk_1"), "r"));
    let pending = event(transaction("PENDING", json!("lnk_1"), "r"));
    let a1 = parse_event(&approved).unwrap().event_id;
    assert_eq!(a1, parse_event(&approved).unwrap().event_id);
    assert_ne!(a1, parse_event(&pending).unwrap().event_id);
}

#[test]
fn wompi_link_id_comes_from_the_reference_when_payment_link_id_is_null() {
    let cases = [
        ("test_PGXmmR_1769539666_OvjSG3wq2", "test_PGXmmR"),
        ("AbC12_1769539666_x", "AbC12"),
        // Not the link shape: taken whole (our own reference, a uuid).
        (
            "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
            "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        ),
        ("order_12_abc", "order_12_abc"),
        ("a_b", "a_b"),
    ];
    for (reference, expected) in cases {
        for link in [Value::Null, json!("")] {
            let parsed = parse_event(&event(transaction("APPROVED", link, reference))).unwrap();
            assert_eq!(parsed.provider_ref, expected, "{reference}");
        }
    }
    // `payment_link_id` wins when Wompi sends it.
    let parsed = parse_event(&event(transaction(
        "APPROVED",
        json!("lnk_9"),
        "other_1769539666_x",
    )))
    .unwrap();
    assert_eq!(parsed.provider_ref, "lnk_9");
}

#[test]
fn wompi_other_events_are_acknowledged_without_a_status() {
    let body = serde_json::to_vec(&json!({
        "event": "nequi_token.updated",
        "data": {"nequi_token": {"id": "nequi_prod_1", "status": "APPROVED"}},
        "timestamp": 1_764_560_000,
    }))
    .unwrap();
    let parsed = parse_event(&body).unwrap();
    assert_eq!(parsed.status, None);
    assert_eq!(parsed.kind, "nequi_token.updated");
    assert_eq!(parsed.provider_ref, "nequi_prod_1");
    assert_eq!(
        parsed.event_id,
        "nequi_token.updated:nequi_prod_1:1764560000"
    );
}

#[test]
fn wompi_malformed_events_are_refused() {
    let cases: [&[u8]; 6] = [
        b"not json",
        br#"{"data":{"transaction":{"id":"1","status":"APPROVED","reference":"r"}},"timestamp":1}"#,
        br#"{"event":"transaction.updated","data":{"transaction":{"id":"1","status":"APPROVED","reference":"r"}}}"#,
        br#"{"event":"transaction.updated","data":{"transaction":{"status":"APPROVED","reference":"r"}},"timestamp":1}"#,
        br#"{"event":"transaction.updated","data":{"transaction":{"id":"1","reference":"r"}},"timestamp":1}"#,
        br#"{"event":"transaction.updated","data":{"transaction":{"id":"1","status":"APPROVED"}},"timestamp":1}"#,
    ];
    for body in cases {
        assert!(
            matches!(parse_event(body), Err(WebhookError::Malformed(_))),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}
