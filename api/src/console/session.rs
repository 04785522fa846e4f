//! The console's session: a login form takes an admin or operator token and sets a signed
//! cookie; every console request is checked against it, and every write also against its
//! origin.
//!
//! The cookie is `v1.<expiry>.<token digest>.<signature>`: the expiry in seconds since the
//! epoch, the SHA-256 of the token (never the token; checked against `API_TOKENS` on every
//! request, so removing a token ends its sessions), and HMAC-SHA256 over the rest with
//! `CONSOLE_SESSION_SECRET`. `HttpOnly`, `SameSite=Strict`, `Path=/console`, and `Secure`
//! when `CONSOLE_SECURE_COOKIE` says so (default: on in production, where the api sits
//! behind TLS; off in development, served over plain http on a laptop). No proxy header is
//! trusted for that decision.

use std::time::Duration;

use axum::http::{header, HeaderMap, Method};
use hmac::{Hmac, Mac};
use jobs::config::{parsed, var, ConfigError, Environment};
use sha2::{Digest, Sha256};

use crate::auth::{Principal, Role, Tokens};

/// The cookie's name.
pub const COOKIE: &str = "taquilla_console";
/// Shortest secret accepted in production (`openssl rand -hex 32` gives 64 characters).
pub const MIN_SECRET_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

#[derive(Clone)]
pub struct SessionConfig {
    secret: Vec<u8>,
    /// `Secure` on the cookie.
    pub secure_cookie: bool,
    /// How long a login lasts.
    pub ttl: Duration,
}

impl std::fmt::Debug for SessionConfig {
    // Never print the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionConfig")
            .field("secure_cookie", &self.secure_cookie)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

fn invalid(name: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        name: name.into(),
        message: message.into(),
    }
}

impl SessionConfig {
    /// Tests and embedders: a fixed secret that only development accepts.
    pub fn development() -> Self {
        Self {
            secret: Sha256::digest(b"taquilla console development secret").to_vec(),
            secure_cookie: false,
            ttl: Duration::from_secs(8 * 3600),
        }
    }

    /// A session config with this secret (at least [`MIN_SECRET_LEN`] bytes).
    pub fn with_secret(secret: &[u8], secure_cookie: bool, ttl: Duration) -> Self {
        Self {
            secret: secret.to_vec(),
            secure_cookie,
            ttl,
        }
    }

    /// `CONSOLE_SESSION_SECRET` (required in production, ≥ 32 characters; in development,
    /// when unset, derived from `DATABASE_URL` so sessions survive a restart of a laptop's
    /// api), `CONSOLE_SECURE_COOKIE` (`true`/`false`; default: production), and
    /// `CONSOLE_SESSION_HOURS` (default 8).
    pub fn from_env(env: Environment, database_url: &str) -> Result<Self, ConfigError> {
        let secret = match var("CONSOLE_SESSION_SECRET") {
            Some(s) if env.is_production() && s.len() < MIN_SECRET_LEN => {
                return Err(invalid(
                    "CONSOLE_SESSION_SECRET",
                    format!("needs at least {MIN_SECRET_LEN} characters in production"),
                ))
            }
            Some(s) => s.into_bytes(),
            None if env.is_production() => {
                return Err(invalid(
                    "CONSOLE_SESSION_SECRET",
                    format!(
                        "is required in production: a random string of at least {MIN_SECRET_LEN} \
                         characters that signs the console's session cookies (openssl rand -hex 32)"
                    ),
                ))
            }
            None => {
                tracing::warn!("CONSOLE_SESSION_SECRET is not set: deriving a development secret");
                Sha256::digest(format!("taquilla console dev secret|{database_url}")).to_vec()
            }
        };
        let hours: u64 = parsed("CONSOLE_SESSION_HOURS", 8)?;
        if !(1..=24 * 30).contains(&hours) {
            return Err(invalid(
                "CONSOLE_SESSION_HOURS",
                "must be a whole number of hours from 1 to 720",
            ));
        }
        Ok(Self {
            secret,
            secure_cookie: parsed("CONSOLE_SECURE_COOKIE", env.is_production())?,
            ttl: Duration::from_secs(hours * 3600),
        })
    }

    fn sign(&self, payload: &str) -> String {
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("any key length");
        mac.update(payload.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The cookie value for a login with `token`, valid until `now + ttl`.
    pub fn issue(&self, token: &str, now: i64) -> String {
        let payload = format!(
            "v1.{}.{}",
            now + self.ttl.as_secs() as i64,
            hex::encode(Sha256::digest(token.as_bytes()))
        );
        let sig = self.sign(&payload);
        format!("{payload}.{sig}")
    }

    /// The principal of a cookie value: signature, expiry and a token still configured.
    pub fn verify(&self, value: &str, tokens: &Tokens, now: i64) -> Option<Principal> {
        let (payload, sig) = value.rsplit_once('.')?;
        let sig = hex::decode(sig).ok()?;
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("any key length");
        mac.update(payload.as_bytes());
        // Constant-time comparison.
        mac.verify_slice(&sig).ok()?;
        let mut parts = payload.split('.');
        let (Some("v1"), Some(expiry), Some(digest), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        if expiry.parse::<i64>().ok()? <= now {
            return None;
        }
        let digest: [u8; 32] = hex::decode(digest).ok()?.try_into().ok()?;
        tokens
            .lookup_digest(&digest)
            .filter(|p| p.can_observe())
            .cloned()
    }

    /// `Set-Cookie` for a fresh session.
    pub fn set_cookie(&self, value: &str) -> String {
        format!(
            "{COOKIE}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{}",
            self.ttl.as_secs(),
            if self.secure_cookie { "; Secure" } else { "" }
        )
    }

    /// `Set-Cookie` that ends the session.
    pub fn clear_cookie(&self) -> String {
        format!(
            "{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0{}",
            if self.secure_cookie { "; Secure" } else { "" }
        )
    }
}

/// The session cookie's value among the request's cookies.
pub fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// Whether a write comes from a console page: `Sec-Fetch-Site: same-origin` (every current
/// browser sends it), or else an `Origin` whose host is the request's `Host`. A request with
/// neither (a script, an old browser) is refused: the console is for browsers.
pub fn same_origin(method: &Method, headers: &HeaderMap) -> bool {
    if method == Method::GET || method == Method::HEAD {
        return true;
    }
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = get("sec-fetch-site") {
        return site == "same-origin";
    }
    match (get("origin"), get("host")) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, rest)| rest == host),
        _ => false,
    }
}

/// Whether this principal may act (an admin), or only look (an operator).
pub fn may_act(p: &Principal) -> bool {
    p.role == Role::Admin
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens::parse("admin-token:ops:admin,operator-token:watch:operator,demo-token:demo")
            .unwrap()
    }

    #[test]
    fn a_signed_cookie_names_its_principal_until_it_expires() {
        let cfg = SessionConfig::development();
        let v = cfg.issue("admin-token", 1000);
        let p = cfg.verify(&v, &tokens(), 1001).unwrap();
        assert_eq!((p.requester.as_str(), may_act(&p)), ("ops", true));
        assert!(cfg.verify(&v, &tokens(), 1000 + 8 * 3600).is_none());
        let op = cfg
            .verify(&cfg.issue("operator-token", 0), &tokens(), 1)
            .unwrap();
        assert!(!may_act(&op));
        // A requester token never opens the console.
        assert!(cfg
            .verify(&cfg.issue("demo-token", 0), &tokens(), 1)
            .is_none());
        assert!(cfg
            .verify(&cfg.issue("unknown-tok", 0), &tokens(), 1)
            .is_none());
    }

    #[test]
    fn a_tampered_or_foreign_cookie_is_refused() {
        let cfg = SessionConfig::development();
        let v = cfg.issue("operator-token", 0);
        // Longer expiry, same signature.
        let (payload, sig) = v.rsplit_once('.').unwrap();
        let forged = payload.replacen("v1.28800", "v1.99999999", 1);
        assert!(cfg
            .verify(&format!("{forged}.{sig}"), &tokens(), 1)
            .is_none());
        let other = SessionConfig::with_secret(&[7; 32], false, Duration::from_secs(60));
        assert!(other.verify(&v, &tokens(), 1).is_none());
        assert!(cfg.verify("garbage", &tokens(), 1).is_none());
    }

    #[test]
    fn writes_need_the_same_origin() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, v.parse().unwrap());
            }
            m
        };
        let post = Method::POST;
        assert!(same_origin(&post, &h(&[("sec-fetch-site", "same-origin")])));
        assert!(!same_origin(&post, &h(&[("sec-fetch-site", "cross-site")])));
        assert!(same_origin(
            &post,
            &h(&[
                ("origin", "http://127.0.0.1:8080"),
                ("host", "127.0.0.1:8080")
            ])
        ));
        assert!(!same_origin(
            &post,
            &h(&[
                ("origin", "http://evil.example"),
                ("host", "127.0.0.1:8080")
            ])
        ));
        assert!(!same_origin(&post, &h(&[])));
        assert!(same_origin(&Method::GET, &h(&[])));
    }

    #[test]
    fn production_needs_a_real_secret() {
        // Only the missing case: the variable is unset in the test environment.
        if var("CONSOLE_SESSION_SECRET").is_none() {
            let err = SessionConfig::from_env(Environment::Production, "postgres://x").unwrap_err();
            assert_eq!(err.name, "CONSOLE_SESSION_SECRET");
        }
    }
}
