//! Bearer tokens → principals (`API_TOKENS`), and what each principal may do.
//!
//! `API_TOKENS` is a comma-separated list of entries:
//! * `token:requester` — a client: every product route, only its own tasks;
//! * `token:requester:scopes=director+reports` — a client limited to those scopes
//!   (`director`: assignments, payments, ledgers; `reports`: reports, exports;
//!   `deliveries`: sends, bulk sends, WhatsApp sessions);
//! * `token:requester:operator` — read-only operator: every `GET` (the `/admin/*` views and
//!   `/metrics` included), no writes;
//! * `token:requester:admin` — an operator who may also act (re-drive, delete, refresh).
//!
//! What each role and scope may reach is decided per route in `access`. Tokens are kept as
//! SHA-256 digests and every lookup compares the presented token's digest with all of them
//! without an early exit, so neither a map keyed by the secret nor a byte-by-byte compare
//! lets response timing reveal a token.

use std::sync::Arc;

use axum::{
    extract::FromRequestParts,
    http::{request::Parts, HeaderMap},
};
use jobs::config::Environment;
use sha2::{Digest, Sha256};

use crate::{error::ApiError, AppState};

/// The tokens used when `API_TOKENS` is unset in development: the demo requester of the
/// seed's curl flow and an operator. Refused in production, even when listed.
pub const DEVELOPMENT_TOKENS: &str = "demo-token:demo,admin-token:ops:admin";

/// Shortest token accepted in production (`openssl rand -hex 16` gives 32 characters).
pub const PRODUCTION_MIN_TOKEN_LEN: usize = 32;
/// Shortest token accepted in development.
pub const MIN_TOKEN_LEN: usize = 8;

/// Requester names the system writes into `tasks.requester` for its own tasks. A client
/// token named like one of them would see (and could cancel) those tasks.
pub const RESERVED_REQUESTERS: &[&str] = &[
    jobs::kinds::kpi_refresh::SYSTEM,
    crate::routes::whatsapp::WEBHOOK_REQUESTER,
    crate::routes::payments::WEBHOOK_REQUESTER,
    // engine/src/cron.rs (scheduled ticks) and worker/src/main.rs (`worker run-once`).
    "cron",
    "cli",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Requester,
    Operator,
    Admin,
}

/// A part of the product a requester token may be limited to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Assignments, payments, organizer ledgers.
    Director,
    /// Dashboard reports and their exports.
    Reports,
    /// Single and bulk sends, WhatsApp session windows.
    Deliveries,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Director, Scope::Reports, Scope::Deliveries];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Director => "director",
            Scope::Reports => "reports",
            Scope::Deliveries => "deliveries",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub requester: String,
    /// Full operator rights (`Role::Admin`); kept as a flag for the handlers' own checks.
    pub admin: bool,
    pub role: Role,
    /// Bit set of [`Scope`]s; `None` = every scope (a token without `scopes=`).
    scopes: Option<u8>,
}

impl Principal {
    /// May read the operator views (`GET /admin/*`, `/metrics`).
    pub fn can_observe(&self) -> bool {
        matches!(self.role, Role::Operator | Role::Admin)
    }

    pub fn has_scope(&self, scope: Scope) -> bool {
        self.scopes.is_none_or(|bits| bits & scope.bit() != 0)
    }

    pub(crate) fn scope_names(&self) -> String {
        Scope::ALL
            .into_iter()
            .filter(|s| self.has_scope(*s))
            .map(Scope::as_str)
            .collect::<Vec<_>>()
            .join("+")
    }
}

pub type TokenDigest = [u8; 32];

fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

/// Equality of two digests that always looks at every byte.
fn same_digest(a: &TokenDigest, b: &TokenDigest) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[derive(Clone, Default)]
pub struct Tokens(Arc<Vec<(TokenDigest, Principal)>>);

impl std::fmt::Debug for Tokens {
    // Digests only, but still nothing a log needs: the requesters are enough.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(_, p)| &p.requester))
            .finish()
    }
}

impl Tokens {
    /// Parses `API_TOKENS` with the development rules (see [`Tokens::parse_for`]).
    pub fn parse(spec: &str) -> Result<Self, String> {
        Self::parse_for(spec, Environment::Development)
    }

    /// Parses `API_TOKENS`. Always refused: bad syntax, tokens under 8 characters, a token
    /// listed twice, reserved requester names. In production also the built-in demo tokens
    /// and tokens under [`PRODUCTION_MIN_TOKEN_LEN`] characters.
    pub fn parse_for(spec: &str, env: Environment) -> Result<Self, String> {
        let builtin: Vec<&str> = DEVELOPMENT_TOKENS
            .split(',')
            .filter_map(|e| e.split(':').next())
            .collect();
        let min_len = if env.is_production() {
            PRODUCTION_MIN_TOKEN_LEN
        } else {
            MIN_TOKEN_LEN
        };
        let mut entries: Vec<(TokenDigest, Principal)> = Vec::new();
        for (n, item) in spec
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .enumerate()
        {
            // Errors name the entry by position and requester, never by its token.
            let (token, principal) =
                parse_entry(item).map_err(|m| format!("entry {}: {m}", n + 1))?;
            let who = format!("entry {} ({})", n + 1, principal.requester);
            if env.is_production() && builtin.contains(&token) {
                return Err(format!(
                    "{who}: the built-in development token cannot be used in production"
                ));
            }
            if token.len() < min_len {
                return Err(format!(
                    "{who}: tokens need at least {min_len} characters in {}",
                    env.as_str()
                ));
            }
            let d = digest(token);
            if entries.iter().any(|(e, _)| same_digest(e, &d)) {
                return Err(format!("{who}: the same token is listed twice"));
            }
            entries.push((d, principal));
        }
        if entries.is_empty() {
            return Err("no token configured".into());
        }
        Ok(Self(Arc::new(entries)))
    }

    /// The principal of `token`, comparing its digest with every configured one.
    pub fn lookup(&self, token: &str) -> Option<&Principal> {
        self.lookup_digest(&digest(token))
    }

    /// The principal of a token's SHA-256 digest (the console's session cookie carries the
    /// digest, never the token), compared with every configured one.
    pub fn lookup_digest(&self, presented: &TokenDigest) -> Option<&Principal> {
        let mut found = None;
        for (d, principal) in self.0.iter() {
            if same_digest(d, presented) {
                found = Some(principal);
            }
        }
        found
    }
}

/// One `API_TOKENS` entry → (token, principal).
fn parse_entry(item: &str) -> Result<(&str, Principal), String> {
    const SHAPE: &str =
        "expected token:requester, token:requester:admin, token:requester:operator or token:requester:scopes=a+b";
    let parts: Vec<&str> = item.split(':').map(str::trim).collect();
    let (token, requester, modifier) = match parts.as_slice() {
        [t, r] => (*t, *r, None),
        [t, r, m] => (*t, *r, Some(*m)),
        _ => return Err(SHAPE.into()),
    };
    if requester.is_empty() {
        return Err("the requester name is empty".into());
    }
    if RESERVED_REQUESTERS
        .iter()
        .any(|r| r.eq_ignore_ascii_case(requester))
    {
        return Err(format!(
            "requester {requester:?} is reserved for the system's own tasks ({})",
            RESERVED_REQUESTERS.join(", ")
        ));
    }
    let (role, scopes) = match modifier {
        None => (Role::Requester, None),
        Some("admin") => (Role::Admin, None),
        Some("operator") => (Role::Operator, None),
        Some(m) => match m.strip_prefix("scopes=") {
            Some(list) => (Role::Requester, Some(parse_scopes(list)?)),
            None => return Err(SHAPE.into()),
        },
    };
    Ok((
        token,
        Principal {
            requester: requester.to_string(),
            admin: role == Role::Admin,
            role,
            scopes,
        },
    ))
}

fn parse_scopes(list: &str) -> Result<u8, String> {
    let mut bits = 0;
    for name in list.split('+').map(str::trim) {
        let scope = Scope::parse(name).ok_or_else(|| {
            format!("unknown scope {name:?}: use director, reports or deliveries, joined by '+'")
        })?;
        bits |= scope.bit();
    }
    Ok(bits)
}

/// The bearer token of `Authorization`, or why there is none.
pub fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <token>"))?;
    let value = header
        .to_str()
        .map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .ok_or_else(|| ApiError::unauthorized("Authorization must be 'Bearer <token>'"))
}

pub(crate) fn authenticate(tokens: &Tokens, headers: &HeaderMap) -> Result<Principal, ApiError> {
    tokens
        .lookup(bearer(headers)?)
        .cloned()
        .ok_or_else(|| ApiError::unauthorized("unknown token"))
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match parts.extensions.get::<Principal>() {
            Some(p) => Ok(p.clone()),
            None => authenticate(&state.tokens, &parts.headers),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_requesters_and_admins() {
        let t = Tokens::parse(DEVELOPMENT_TOKENS).unwrap();
        assert_eq!(t.lookup("demo-token").unwrap().requester, "demo");
        assert!(!t.lookup("demo-token").unwrap().admin);
        assert!(t.lookup("admin-token").unwrap().admin);
        assert!(t.lookup("nope").is_none());
        assert!(Tokens::parse("short:x").is_err());
        assert!(Tokens::parse("longenough:x:root").is_err());
        assert!(Tokens::parse("").is_err());
    }

    #[test]
    fn parses_operators_and_scopes() {
        let t = Tokens::parse(
            "operator-token:watch:operator,scoped-token:acme:scopes=reports+deliveries",
        )
        .unwrap();
        let op = t.lookup("operator-token").unwrap();
        assert_eq!((op.role, op.admin), (Role::Operator, false));
        let scoped = t.lookup("scoped-token").unwrap();
        assert!(scoped.has_scope(Scope::Reports) && scoped.has_scope(Scope::Deliveries));
        assert!(!scoped.has_scope(Scope::Director));
        assert!(Tokens::parse("scoped-token:acme:scopes=everything").is_err());
        assert!(Tokens::parse("scoped-token:acme:scopes=").is_err());
    }

    #[test]
    fn production_refuses_demo_and_short_tokens() {
        let prod = Environment::Production;
        let long = "x".repeat(PRODUCTION_MIN_TOKEN_LEN);
        assert!(Tokens::parse_for(&format!("{long}:acme"), prod).is_ok());
        let err = Tokens::parse_for(&format!("{long}:acme,demo-token:demo"), prod).unwrap_err();
        assert!(err.contains("entry 2 (demo)"), "{err}");
        assert!(
            !err.contains("demo-token"),
            "an error must not echo a token: {err}"
        );
        assert!(Tokens::parse_for(&format!("{long}:acme,admin-token:ops:admin"), prod).is_err());
        assert!(Tokens::parse_for("fifteen-chars-x:acme", prod).is_err());
    }

    #[test]
    fn reserved_and_duplicate_entries_are_refused() {
        for name in ["system", "cron", "cli", "whatsapp-webhook", "System"] {
            let err = Tokens::parse(&format!("abcdefgh-123:{name}")).unwrap_err();
            assert!(err.contains("reserved"), "{name}: {err}");
        }
        assert!(Tokens::parse("abcdefgh-123:a,abcdefgh-123:b").is_err());
    }
}
