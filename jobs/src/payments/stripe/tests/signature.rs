use std::{
    collections::HashMap,
    io::Write,
    process::{Command, Stdio},
    time::Duration,
};

use chrono::{DateTime, Utc};

use crate::payments::{config::PaymentsConfig, stripe::verify, WebhookError, WebhookRequest};

const SECRET: &str = "whsec_Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA";
const BODY: &[u8] = br#"{"id":"evt_1","type":"payment_intent.succeeded","data":{"object":{"id":"pi_1","amount":1000}}}"#;

/// Stripe's scheme computed by Python's `hmac` (an implementation independent of ours): hex
/// HMAC-SHA256 of `"{t}.{body}"` under the whole secret string.
fn python_v1(secret: &str, t: i64, body: &[u8]) -> String {
    let script = "import hashlib, hmac, sys\n\
                  body = sys.stdin.buffer.read()\n\
                  msg = sys.argv[2].encode() + b'.' + body\n\
                  print(hmac.new(sys.argv[1].encode(), msg, hashlib.sha256).hexdigest())";
    let mut child = Command::new("python3")
        .args(["-c", script, secret, &t.to_string()])
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
    DateTime::from_timestamp(1_764_560_000, 0).unwrap()
}

fn config() -> PaymentsConfig {
    PaymentsConfig {
        stripe_webhook_secret: Some(SECRET.into()),
        stripe_webhook_tolerance: Duration::from_secs(300),
        ..PaymentsConfig::default()
    }
}

fn check(header: Option<String>, body: &[u8], cfg: &PaymentsConfig) -> Result<(), WebhookError> {
    let headers: HashMap<String, String> = header
        .into_iter()
        .map(|h| ("stripe-signature".to_string(), h))
        .collect();
    verify(
        &WebhookRequest {
            body,
            headers: &headers,
        },
        cfg,
        now(),
    )
}

fn signed_at(t: i64) -> Option<String> {
    Some(format!("t={t},v1={}", python_v1(SECRET, t, BODY)))
}

#[test]
fn stripe_signature_valid_is_accepted() {
    let t = now().timestamp();
    assert_eq!(check(signed_at(t), BODY, &config()), Ok(()));
    // Spaces after commas, as some proxies rewrite headers, still parse.
    let spaced = format!("t={t}, v1={}", python_v1(SECRET, t, BODY));
    assert_eq!(check(Some(spaced), BODY, &config()), Ok(()));
}

#[test]
fn stripe_signature_over_a_tampered_body_is_refused() {
    let t = now().timestamp();
    let tampered = String::from_utf8(BODY.to_vec())
        .unwrap()
        .replace("1000", "1");
    assert_eq!(
        check(signed_at(t), tampered.as_bytes(), &config()),
        Err(WebhookError::BadSignature)
    );
    // Re-serialised JSON (same meaning, other bytes) does not verify either.
    let reserialised =
        serde_json::to_vec_pretty(&serde_json::from_slice::<serde_json::Value>(BODY).unwrap())
            .unwrap();
    assert_eq!(
        check(signed_at(t), &reserialised, &config()),
        Err(WebhookError::BadSignature)
    );
}

#[test]
fn stripe_signature_with_another_secret_is_refused() {
    let t = now().timestamp();
    let header = format!("t={t},v1={}", python_v1("whsec_other", t, BODY));
    assert_eq!(
        check(Some(header), BODY, &config()),
        Err(WebhookError::BadSignature)
    );
    // The key is the whole secret: signing with it minus the `whsec_` prefix does not verify.
    let stripped = SECRET.trim_start_matches("whsec_");
    let header = format!("t={t},v1={}", python_v1(stripped, t, BODY));
    assert_eq!(
        check(Some(header), BODY, &config()),
        Err(WebhookError::BadSignature)
    );
}

#[test]
fn stripe_signature_any_of_several_v1_may_match() {
    let t = now().timestamp();
    let header = format!(
        "t={t},v1={},v1=not-hex,v1={},v0={}",
        python_v1("whsec_rolled_out", t, BODY),
        python_v1(SECRET, t, BODY),
        python_v1("whsec_v0", t, BODY),
    );
    assert_eq!(check(Some(header), BODY, &config()), Ok(()));
}

#[test]
fn stripe_signature_outside_the_tolerance_is_stale() {
    let t = now().timestamp();
    assert_eq!(check(signed_at(t - 300), BODY, &config()), Ok(()));
    assert_eq!(
        check(signed_at(t - 301), BODY, &config()),
        Err(WebhookError::Stale)
    );
    assert_eq!(check(signed_at(t + 300), BODY, &config()), Ok(()));
    assert_eq!(
        check(signed_at(t + 301), BODY, &config()),
        Err(WebhookError::Stale)
    );
    let short = PaymentsConfig {
        stripe_webhook_tolerance: Duration::from_secs(10),
        ..config()
    };
    assert_eq!(
        check(signed_at(t - 11), BODY, &short),
        Err(WebhookError::Stale)
    );
}

#[test]
fn stripe_signature_header_missing_or_without_v1_is_refused() {
    assert_eq!(
        check(None, BODY, &config()),
        Err(WebhookError::MissingSignature("Stripe-Signature"))
    );
    let t = now().timestamp();
    // A v0 signature that is correct under our secret still does not count: only v1 does.
    let v0_only = format!("t={t},v0={}", python_v1(SECRET, t, BODY));
    assert_eq!(
        check(Some(v0_only), BODY, &config()),
        Err(WebhookError::BadSignature)
    );
}

#[test]
fn stripe_signature_header_unparsable_is_refused() {
    let t = now().timestamp();
    let v1 = python_v1(SECRET, t, BODY);
    for header in [
        String::new(),
        "garbage".to_string(),
        format!("v1={v1}"),
        format!("t=soon,v1={v1}"),
        format!("t={t},t={},v1={v1}", t + 1),
        format!("t={t};v1={v1}"),
    ] {
        assert_eq!(
            check(Some(header.clone()), BODY, &config()),
            Err(WebhookError::BadSignature),
            "{header:?}"
        );
    }
}

#[test]
fn stripe_signature_without_a_configured_secret_is_refused() {
    let cfg = PaymentsConfig {
        stripe_webhook_secret: None,
        ..config()
    };
    assert_eq!(
        check(signed_at(now().timestamp()), BODY, &cfg),
        Err(WebhookError::NotConfigured("stripe"))
    );
}
