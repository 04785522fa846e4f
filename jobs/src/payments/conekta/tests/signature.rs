use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use chrono::Utc;
use uuid::Uuid;

use crate::payments::{conekta::verify, config::PaymentsConfig, WebhookError, WebhookRequest};

const BODY: &[u8] =
    br#"{"id":"evt_1","type":"order.paid","data":{"object":{"id":"ord_1","amount":1000}}}"#;

/// Two RSA key pairs made by the `openssl` command line in a temporary directory: the
/// account's key and a stranger's.
struct Keys {
    dir: PathBuf,
    public_spki: String,
    public_pkcs1: String,
    other_public: String,
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("conekta-keys-{}", Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("key.pem");
        let other = dir.join("other.pem");
        openssl(&["genrsa", "-out", path_str(&key), "2048"]);
        openssl(&["genrsa", "-out", path_str(&other), "2048"]);
        let public = |key: &Path, extra: &[&str]| {
            let mut args = vec!["rsa", "-in", path_str(key)];
            args.extend_from_slice(extra);
            String::from_utf8(openssl(&args)).unwrap()
        };
        Keys {
            public_spki: public(&key, &["-pubout"]),
            public_pkcs1: public(&key, &["-RSAPublicKey_out"]),
            other_public: public(&other, &["-pubout"]),
            dir,
        }
    })
}

/// base64 of the RSA PKCS#1 v1.5 signature of SHA-256(body), all by `openssl`.
fn openssl_digest(private: &str, body: &[u8]) -> String {
    let k = keys();
    let id = Uuid::now_v7();
    let body_file = k.dir.join(format!("{id}.body"));
    let sig_file = k.dir.join(format!("{id}.sig"));
    std::fs::write(&body_file, body).unwrap();
    let key = k.dir.join(private);
    openssl(&[
        "dgst",
        "-sha256",
        "-sign",
        path_str(&key),
        "-out",
        path_str(&sig_file),
        path_str(&body_file),
    ]);
    let b64 = openssl(&["base64", "-A", "-in", path_str(&sig_file)]);
    let _ = std::fs::remove_file(&body_file);
    let _ = std::fs::remove_file(&sig_file);
    String::from_utf8(b64).unwrap().trim().to_string()
}

fn config(public: &str) -> PaymentsConfig {
    PaymentsConfig {
        conekta_webhook_public_key: Some(public.into()),
        ..PaymentsConfig::default()
    }
}

fn check(header: Option<String>, body: &[u8], cfg: &PaymentsConfig) -> Result<(), WebhookError> {
    let headers: HashMap<String, String> = header
        .into_iter()
        .map(|h| ("digest".to_string(), h))
        .collect();
    verify(
        &WebhookRequest {
            body,
            headers: &headers,
        },
        cfg,
        Utc::now(),
    )
}

#[test]
fn conekta_digest_valid_is_accepted_with_either_pem_form() {
    let digest = openssl_digest("key.pem", BODY);
    assert_eq!(
        check(Some(digest.clone()), BODY, &config(&keys().public_spki)),
        Ok(())
    );
    assert_eq!(
        check(Some(digest.clone()), BODY, &config(&keys().public_pkcs1)),
        Ok(())
    );
    // A PEM from an environment file with its newlines written as `\n`.
    let escaped = keys().public_spki.trim().replace('\n', "\\n");
    assert_eq!(check(Some(digest), BODY, &config(&escaped)), Ok(()));
}

#[test]
fn conekta_digest_over_a_tampered_body_is_refused() {
    let digest = openssl_digest("key.pem", BODY);
    let tampered = String::from_utf8(BODY.to_vec())
        .unwrap()
        .replace("1000", "9000");
    assert_eq!(
        check(
            Some(digest),
            tampered.as_bytes(),
            &config(&keys().public_spki)
        ),
        Err(WebhookError::BadSignature)
    );
}

#[test]
fn conekta_digest_by_another_key_is_refused() {
    let digest = openssl_digest("other.pem", BODY);
    assert_eq!(
        check(Some(digest.clone()), BODY, &config(&keys().public_spki)),
        Err(WebhookError::BadSignature)
    );
    // And our signature under the stranger's public key.
    let ours = openssl_digest("key.pem", BODY);
    assert_eq!(
        check(Some(ours), BODY, &config(&keys().other_public)),
        Err(WebhookError::BadSignature)
    );
}

#[test]
fn conekta_missing_or_garbled_digest_is_refused() {
    let cfg = config(&keys().public_spki);
    assert_eq!(
        check(None, BODY, &cfg),
        Err(WebhookError::MissingSignature("DIGEST"))
    );
    for bad in ["", "not base64 !!", "AAAA"] {
        assert_eq!(
            check(Some(bad.into()), BODY, &cfg),
            Err(WebhookError::BadSignature),
            "{bad:?}"
        );
    }
}

#[test]
fn conekta_without_a_public_key_is_not_configured() {
    let digest = openssl_digest("key.pem", BODY);
    assert_eq!(
        check(Some(digest.clone()), BODY, &PaymentsConfig::default()),
        Err(WebhookError::NotConfigured("conekta"))
    );
    // A key that does not parse is no key: never accepted unsigned.
    assert_eq!(
        check(
            Some(digest),
            BODY,
            &config("-----BEGIN PUBLIC KEY-----\nxx\n-----END PUBLIC KEY-----")
        ),
        Err(WebhookError::NotConfigured("conekta"))
    );
}
