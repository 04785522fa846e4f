//! Bearer tokens → requesters (`API_TOKENS`). A requester sees only its own tasks.
//!
//! `API_TOKENS` is a comma-separated list of `token:requester` or `token:requester:admin`.

use std::{collections::HashMap, sync::Arc};

use axum::{extract::FromRequestParts, http::request::Parts};

use crate::{error::ApiError, AppState};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub requester: String,
    pub admin: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Tokens(Arc<HashMap<String, Principal>>);

/// The tokens used when `API_TOKENS` is unset: the demo requester of the seed's curl flow
/// and an operator. Fine on a laptop, logged loudly anywhere else.
pub const DEVELOPMENT_TOKENS: &str = "demo-token:demo,admin-token:ops:admin";

impl Tokens {
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut map = HashMap::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let parts: Vec<&str> = item.split(':').collect();
            let (token, requester, admin) = match parts.as_slice() {
                [t, r] => (*t, *r, false),
                [t, r, "admin"] => (*t, *r, true),
                _ => {
                    return Err(format!(
                        "entry {:?} is not token:requester or token:requester:admin",
                        item.split(':').next().unwrap_or("")
                    ))
                }
            };
            if token.len() < 8 || requester.is_empty() {
                return Err("tokens need at least 8 characters and a requester name".into());
            }
            map.insert(
                token.to_string(),
                Principal {
                    requester: requester.to_string(),
                    admin,
                },
            );
        }
        if map.is_empty() {
            return Err("no token configured".into());
        }
        Ok(Self(Arc::new(map)))
    }

    pub fn lookup(&self, token: &str) -> Option<&Principal> {
        self.0.get(token)
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <token>"))?;
        let value = header
            .to_str()
            .map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or_else(|| ApiError::unauthorized("Authorization must be 'Bearer <token>'"))?;
        state
            .tokens
            .lookup(token)
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("unknown token"))
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
}
