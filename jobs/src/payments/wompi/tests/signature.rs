use std::{
    collections::HashMap,
    io::Write,
    process::{Command, Stdio},
};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::payments::{config::PaymentsConfig, wompi::verify, WebhookError, WebhookRequest};

const SECRET: &str = "test_events_Zm9vYmFyYmF6cXV4MTIz";
const T: i64 = 1_764_560_000;

/// Wompi's checksum computed by Python (`json` + `hashlib`, independent of our code): the
/// values at each listed path under `data`, in the listed order, then `timestamp`, then the
/// secret, SHA-256 hex.
fn python_checksum(secret: &str, body: &[u8]) -> String {
    let script = "import hashlib, json, sys\n\
                  ev = json.loads(sys.stdin.buffer.read())\n\
                  s = ''\n\
                  for p in ev['signature']['properties']:\n\
                  \x20   v = ev['data']\n\
                  \x20   for k in p.split('.'):\n\
                  \x20       v = v[k]\n\
                  \x20   s += str(v)\n\
                  s += str(ev['timestamp']) + sys.argv[1]\n\
                  print(hashlib.sha256(s.encode()).hexdigest())";
    let mut child = Command::new("python3")
        .args(["-c", script, secret])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python3 failed");
    let hex = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(hex.len(), 64);
    hex
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(T + 60, 0).unwrap()
}

fn config() -> PaymentsConfig {
    PaymentsConfig {
        wompi_events_secret: Some(SECRET.into()),
        ..PaymentsConfig::default()
    }
}

/// An event whose `signature.properties` are `properties`, signed by Python with `secret`
/// (`checksum: None` leaves it out of the body).
fn event(properties: &[&str], timestamp: i64, secret: &str) -> Value {
    let mut ev = json!({
        "event": "transaction.updated",
        "data": {"transaction": {
            "id": "1234-1610641025-49201",
            "amount_in_cents": 4_490_000,
            "reference": "test_PGXmmR_1769539666_OvjSG3wq2",
            "customer_email": "juan@example.com",
            "currency": "COP",
            "payment_method_type": "NEQUI",
            "status": "APPROVED",
            "payment_link_id": "test_PGXmmR",
        }},
        "environment": "test",
        "signature": {"properties": properties, "checksum": ""},
        "timestamp": timestamp,
        "sent_at": "2026-12-01T03:33:20.000Z",
    });
    let sum = python_checksum(secret, &serde_json::to_vec(&ev).unwrap());
    ev["signature"]["checksum"] = Value::from(sum);
    ev
}

const USUAL: [&str; 3] = [
    "transaction.id",
    "transaction.status",
    "transaction.amount_in_cents",
];

fn check(body: &Value, header: Option<&str>, cfg: &PaymentsConfig) -> Result<(), WebhookError> {
    check_at(body, header, cfg, now())
}

fn check_at(
    body: &Value,
    header: Option<&str>,
    cfg: &PaymentsConfig,
    now: DateTime<Utc>,
) -> Result<(), WebhookError> {
    let bytes = serde_json::to_vec(body).unwrap();
    let headers: HashMap<String, String> = header
        .into_iter()
        .map(|h| ("x-event-checksum".to_string(), h.to_string()))
        .collect();
    verify(
        &WebhookRequest {
            body: &bytes,
            headers: &headers,
        },
        cfg,
        now,
    )
}

fn checksum(ev: &Value) -> String {
    ev["signature"]["checksum"].as_str().unwrap().to_string()
}

#[test]
fn wompi_checksum_valid_is_accepted_in_body_header_or_both() {
    let ev = event(&USUAL, T, SECRET);
    let sum = checksum(&ev);
    assert_eq!(check(&ev, None, &config()), Ok(()));
    assert_eq!(check(&ev, Some(&sum), &config()), Ok(()));
    // Upper-case hex is the same checksum.
    assert_eq!(check(&ev, Some(&sum.to_uppercase()), &config()), Ok(()));
    // Only the header: the body's checksum removed.
    let mut bare = ev.clone();
    bare["signature"]
        .as_object_mut()
        .unwrap()
        .remove("checksum");
    assert_eq!(check(&bare, Some(&sum), &config()), Ok(()));
}

#[test]
fn wompi_checksum_follows_the_events_property_order_and_list() {
    // Another order, and properties Wompi's usual list does not have: read from the event.
    let reordered = [
        "transaction.amount_in_cents",
        "transaction.reference",
        "transaction.status",
        "transaction.id",
    ];
    let ev = event(&reordered, T, SECRET);
    assert_eq!(check(&ev, None, &config()), Ok(()));
    // The same checksum presented with the usual list does not verify: the order matters.
    let mut swapped = ev.clone();
    swapped["signature"]["properties"] = json!(USUAL);
    assert_eq!(
        check(&swapped, None, &config()),
        Err(WebhookError::BadSignature)
    );
}

#[test]
fn wompi_checksum_over_a_tampered_value_or_timestamp_is_refused() {
    let ev = event(&USUAL, T, SECRET);
    let mut tampered = ev.clone();
    tampered["data"]["transaction"]["status"] = json!("DECLINED");
    assert_eq!(
        check(&tampered, None, &config()),
        Err(WebhookError::BadSignature)
    );
    let mut amount = ev.clone();
    amount["data"]["transaction"]["amount_in_cents"] = json!(100);
    assert_eq!(
        check(&amount, None, &config()),
        Err(WebhookError::BadSignature)
    );
    let mut later = ev.clone();
    later["timestamp"] = json!(T + 1);
    assert_eq!(
        check(&later, None, &config()),
        Err(WebhookError::BadSignature)
    );
    // A listed property that is not in the event cannot have been signed.
    let mut missing = ev.clone();
    missing["data"]["transaction"]
        .as_object_mut()
        .unwrap()
        .remove("status");
    assert_eq!(
        check(&missing, None, &config()),
        Err(WebhookError::BadSignature)
    );
    // An empty property list signs nothing of the transaction.
    let mut empty = ev.clone();
    empty["signature"]["properties"] = json!([]);
    assert_eq!(
        check(&empty, None, &config()),
        Err(WebhookError::BadSignature)
    );
}

#[test]
fn wompi_checksum_with_another_secret_is_refused() {
    let ev = event(&USUAL, T, "test_events_other");
    assert_eq!(check(&ev, None, &config()), Err(WebhookError::BadSignature));
    // The integrity secret or the private key are not the events secret.
    let cfg = PaymentsConfig {
        wompi_events_secret: Some("test_integrity_Zm9vYmFy".into()),
        wompi_private_key: Some(SECRET.into()),
        ..PaymentsConfig::default()
    };
    let ev = event(&USUAL, T, SECRET);
    assert_eq!(check(&ev, None, &cfg), Err(WebhookError::BadSignature));
}

#[test]
fn wompi_header_and_body_must_both_match_when_both_are_sent() {
    let ev = event(&USUAL, T, SECRET);
    let other = checksum(&event(&USUAL, T, "test_events_other"));
    assert_eq!(
        check(&ev, Some(&other), &config()),
        Err(WebhookError::BadSignature)
    );
    let mut body_wrong = ev.clone();
    body_wrong["signature"]["checksum"] = json!(other);
    assert_eq!(
        check(&body_wrong, Some(&checksum(&ev)), &config()),
        Err(WebhookError::BadSignature)
    );
    assert_eq!(
        check(&ev, Some("not hex"), &config()),
        Err(WebhookError::BadSignature)
    );
}

#[test]
fn wompi_missing_checksum_or_secret_is_refused() {
    let mut ev = event(&USUAL, T, SECRET);
    ev["signature"].as_object_mut().unwrap().remove("checksum");
    assert_eq!(
        check(&ev, None, &config()),
        Err(WebhookError::MissingSignature("X-Event-Checksum"))
    );
    let signed = event(&USUAL, T, SECRET);
    assert_eq!(
        check(
            &signed,
            Some(&checksum(&signed)),
            &PaymentsConfig::default()
        ),
        Err(WebhookError::NotConfigured("wompi"))
    );
    let headers = HashMap::new();
    assert!(matches!(
        verify(
            &WebhookRequest {
                body: b"not json",
                headers: &headers
            },
            &config(),
            now()
        ),
        Err(WebhookError::Malformed(_))
    ));
}

#[test]
fn wompi_old_or_future_timestamps_are_stale() {
    let ev = event(&USUAL, T, SECRET);
    let at = |secs: i64| DateTime::from_timestamp(T + secs, 0).unwrap();
    // Wompi's last retry (30 min + 3 h + 24 h) is still a delivery.
    assert_eq!(check_at(&ev, None, &config(), at(27 * 3600 + 1800)), Ok(()));
    assert_eq!(check_at(&ev, None, &config(), at(28 * 3600)), Ok(()));
    assert_eq!(
        check_at(&ev, None, &config(), at(28 * 3600 + 1)),
        Err(WebhookError::Stale)
    );
    assert_eq!(check_at(&ev, None, &config(), at(-300)), Ok(()));
    assert_eq!(
        check_at(&ev, None, &config(), at(-301)),
        Err(WebhookError::Stale)
    );
    // A stale event with a wrong checksum says BadSignature: the checksum is checked first.
    let forged = event(&USUAL, T, "test_events_other");
    assert_eq!(
        check_at(&forged, None, &config(), at(40 * 3600)),
        Err(WebhookError::BadSignature)
    );
}
