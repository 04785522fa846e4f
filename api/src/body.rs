//! Strict JSON bodies: the right content type, a size limit, an object, and per-field
//! checks that name the field at fault. Fields are kept as raw JSON text so numbers such as
//! prices are read exactly, never through a float. Every body is also checked to be storable
//! ([`storable`]): what cannot go into Postgres and come back is refused before any write.

pub mod storable;

use std::collections::{BTreeMap, BTreeSet};

use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
    http::{header, StatusCode},
};
use chrono::{DateTime, Utc};
use serde_json::{value::RawValue, Value};

use crate::{error::ApiError, AppState};

/// The delay field every enqueue body accepts ([`JsonObject::optional_start`]).
pub const DELAY_SECONDS: &str = "delaySeconds";
/// The longest `delaySeconds`: a year.
pub const MAX_DELAY_SECONDS: i64 = 366 * 86_400;

/// The fields of a JSON object body, checked one by one; errors accumulate so one reply
/// names every field at fault.
pub struct JsonObject {
    fields: BTreeMap<String, Box<RawValue>>,
    used: BTreeSet<String>,
    errors: BTreeMap<String, String>,
}

fn is_json(content_type: &str) -> bool {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

impl FromRequest<AppState> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !is_json(content_type) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        let limit = state.config.body_limit;
        let too_large = || {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the body must be at most {limit} bytes"),
            )
        };
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let bytes: Bytes = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| too_large())?;
        Self::parse(&bytes)
    }
}

/// Parses a body that must be a JSON object Postgres can store and give back
/// ([`storable`]); every route that keeps client JSON reads its body through this, before
/// anything is written. A number serde_json cannot even read (`1e400`) is named by its path
/// too, not only by its line and column.
pub fn storable_object(bytes: &[u8]) -> Result<Value, ApiError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        if let Some((path, problem)) = storable::unreadable_field(bytes) {
            return ApiError::validation(BTreeMap::from([(path, problem)]));
        }
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    if !value.is_object() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "the body must be a JSON object",
        ));
    }
    let problems = storable::problems(&value);
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    Ok(value)
}

impl JsonObject {
    pub fn parse(bytes: &[u8]) -> Result<Self, ApiError> {
        storable_object(bytes)?;
        // Parse again keeping each field's text (valid JSON object, so this cannot fail).
        let fields: BTreeMap<String, Box<RawValue>> = serde_json::from_slice(bytes)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", e.to_string()))?;
        Ok(Self {
            fields,
            used: BTreeSet::new(),
            errors: BTreeMap::new(),
        })
    }

    /// Whether `name` is present and not null. A null counts as "not given", so the field is
    /// known either way (never "not a known field").
    pub fn has(&mut self, name: &str) -> bool {
        self.used.insert(name.to_string());
        self.fields
            .get(name)
            .is_some_and(|v| v.get().trim() != "null")
    }

    /// Records a problem with `name` (the first one per field is kept).
    pub fn fail(&mut self, name: &str, problem: impl Into<String>) {
        self.errors
            .entry(name.to_string())
            .or_insert_with(|| problem.into());
    }

    /// The raw text of a present, non-null field.
    fn raw(&mut self, name: &str) -> Option<String> {
        self.used.insert(name.to_string());
        let raw = self.fields.get(name)?.get().trim().to_string();
        (raw != "null").then_some(raw)
    }

    fn required_raw(&mut self, name: &str) -> Option<String> {
        let raw = self.raw(name);
        if raw.is_none() {
            self.fail(name, "is required");
        }
        raw
    }

    fn as_string(&mut self, name: &str, raw: String) -> Option<String> {
        match serde_json::from_str::<Value>(&raw) {
            Ok(Value::String(s)) => Some(s),
            _ => {
                self.fail(name, "must be a string");
                None
            }
        }
    }

    /// A required string that `check` accepts (`check` returns the problem, if any).
    pub fn required_str(
        &mut self,
        name: &str,
        check: impl Fn(&str) -> Option<&'static str>,
    ) -> Option<String> {
        let raw = self.required_raw(name)?;
        let s = self.as_string(name, raw)?;
        match check(&s) {
            Some(problem) => {
                self.fail(name, problem);
                None
            }
            None => Some(s),
        }
    }

    pub fn optional_str(
        &mut self,
        name: &str,
        check: impl Fn(&str) -> Option<&'static str>,
    ) -> Option<String> {
        let raw = self.raw(name)?;
        let s = self.as_string(name, raw)?;
        match check(&s) {
            Some(problem) => {
                self.fail(name, problem);
                None
            }
            None => Some(s),
        }
    }

    /// A required string among `allowed`.
    pub fn required_enum(&mut self, name: &str, allowed: &[&str]) -> Option<String> {
        let raw = self.required_raw(name)?;
        self.one_of(name, raw, allowed)
    }

    /// An optional string among `allowed`.
    pub fn optional_enum(&mut self, name: &str, allowed: &[&str]) -> Option<String> {
        let raw = self.raw(name)?;
        self.one_of(name, raw, allowed)
    }

    fn one_of(&mut self, name: &str, raw: String, allowed: &[&str]) -> Option<String> {
        let s = self.as_string(name, raw)?;
        if allowed.contains(&s.as_str()) {
            Some(s)
        } else {
            self.fail(name, format!("must be one of: {}", allowed.join(", ")));
            None
        }
    }

    /// A required whole number within `min..=max`.
    pub fn required_int(&mut self, name: &str, min: i64, max: i64) -> Option<i64> {
        let raw = self.required_raw(name)?;
        self.int_within(name, raw, min, max)
    }

    /// An optional whole number within `min..=max`.
    pub fn optional_int(&mut self, name: &str, min: i64, max: i64) -> Option<i64> {
        let raw = self.raw(name)?;
        self.int_within(name, raw, min, max)
    }

    fn int_within(&mut self, name: &str, raw: String, min: i64, max: i64) -> Option<i64> {
        let range = format!("must be a whole number from {min} to {max}");
        // JSON Schema's `integer` (the OpenAPI document) includes whole numbers written as decimals
        // (`4824.0`, `1e2`); read exactly, never through a float.
        let whole = || {
            jobs::domain::money::parse_cents(&raw)
                .ok()
                .filter(|cents| cents % 100 == 0)
                .map(|cents| cents / 100)
        };
        match serde_json::from_str::<Value>(&raw) {
            Ok(Value::Number(n)) => match n.as_i64().or_else(whole) {
                Some(v) if (min..=max).contains(&v) => Some(v),
                Some(v) if v < min => {
                    self.fail(
                        name,
                        if min == 1 {
                            "must be > 0".to_string()
                        } else {
                            range
                        },
                    );
                    None
                }
                // Whole, but beyond i64 or the exact range of f64: out of range.
                _ if n.as_f64().is_some_and(|f| f.fract() == 0.0) => {
                    self.fail(name, range);
                    None
                }
                _ if n.is_f64() => {
                    self.fail(name, "must be a whole number");
                    None
                }
                _ => {
                    self.fail(name, range);
                    None
                }
            },
            _ => {
                self.fail(name, "must be a number");
                None
            }
        }
    }

    /// A required amount of money: a JSON number with at most 2 decimals, in cents.
    pub fn required_money(&mut self, name: &str, max_cents: i64) -> Option<i64> {
        let raw = self.required_raw(name)?;
        if !raw.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
            self.fail(name, "must be a number");
            return None;
        }
        match jobs::domain::money::parse_cents(&raw) {
            Ok(cents) if cents <= max_cents => Some(cents),
            Ok(_) => {
                self.fail(
                    name,
                    format!(
                        "must be at most {}",
                        jobs::domain::money::format_cents(max_cents)
                    ),
                );
                None
            }
            Err(e) => {
                self.fail(name, e.to_string());
                None
            }
        }
    }

    /// An optional JSON object of at most `max_bytes` of text.
    pub fn optional_object(&mut self, name: &str, max_bytes: usize) -> Option<Value> {
        let raw = self.raw(name)?;
        if raw.len() > max_bytes {
            self.fail(name, format!("must be at most {max_bytes} bytes of JSON"));
            return None;
        }
        match serde_json::from_str::<Value>(&raw) {
            Ok(v @ Value::Object(_)) => Some(v),
            _ => {
                self.fail(name, "must be an object");
                None
            }
        }
    }

    /// An optional field of any JSON type, for callers that check it themselves.
    pub fn optional_value(&mut self, name: &str) -> Option<Value> {
        let raw = self.raw(name)?;
        serde_json::from_str(&raw).ok()
    }

    /// An optional boolean.
    pub fn optional_bool(&mut self, name: &str) -> Option<bool> {
        let raw = self.raw(name)?;
        match raw.as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => {
                self.fail(name, "must be true or false");
                None
            }
        }
    }

    /// An optional array of 1 to `max` strings that `check` accepts, duplicates removed
    /// (first occurrence kept).
    pub fn optional_str_array(
        &mut self,
        name: &str,
        max: usize,
        check: impl Fn(&str) -> Option<&'static str>,
    ) -> Option<Vec<String>> {
        let raw = self.raw(name)?;
        let items = match serde_json::from_str::<Value>(&raw) {
            Ok(Value::Array(items)) => items,
            _ => {
                self.fail(name, "must be an array of strings");
                return None;
            }
        };
        if items.is_empty() || items.len() > max {
            self.fail(name, format!("must hold 1 to {max} items"));
            return None;
        }
        let mut seen = BTreeSet::new();
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let Value::String(s) = item else {
                self.fail(name, format!("item {i} must be a string"));
                return None;
            };
            if let Some(problem) = check(&s) {
                self.fail(name, format!("item {i} {problem}"));
                return None;
            }
            if seen.insert(s.clone()) {
                out.push(s);
            }
        }
        Some(out)
    }

    /// When the task may start: `at_field` (`runAt`, or `sendAt` for a send; RFC 3339 with
    /// an offset) or `delaySeconds` (at most [`MAX_DELAY_SECONDS`]), not both. `None`
    /// (neither given, or a time already past) = now.
    pub fn optional_start(&mut self, at_field: &str) -> Option<DateTime<Utc>> {
        let at = self.optional_str(at_field, |_| None);
        let delay = self.optional_int(DELAY_SECONDS, 0, MAX_DELAY_SECONDS);
        let now = Utc::now();
        match (at, delay) {
            (Some(_), Some(_)) => {
                self.fail(
                    at_field,
                    format!("give {at_field} or {DELAY_SECONDS}, not both"),
                );
                None
            }
            // Any date is a date: far ahead it simply waits (cancellable) in Postgres.
            (Some(text), None) => match DateTime::parse_from_rfc3339(&text) {
                Ok(t) => Some(t.with_timezone(&Utc)).filter(|t| *t > now),
                Err(_) => {
                    self.fail(
                        at_field,
                        "must be an RFC 3339 date-time with an offset, e.g. 2026-12-24T09:00:00-06:00",
                    );
                    None
                }
            },
            (None, Some(seconds)) if seconds > 0 => Some(now + chrono::Duration::seconds(seconds)),
            _ => None,
        }
    }

    /// Ends the checks: unknown fields and every problem found become one 400.
    pub fn finish(mut self) -> Result<(), ApiError> {
        let unknown: Vec<String> = self
            .fields
            .keys()
            .filter(|k| !self.used.contains(*k))
            .cloned()
            .collect();
        for name in unknown {
            self.fail(&name, "is not a known field");
        }
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::validation(self.errors))
        }
    }
}
