//! Reading `jsonb` columns that may hold what `serde_json::Value` cannot: Postgres accepts
//! numbers such as `1e400` or `1.7976931348623157e308` (it writes the latter back as a
//! 309-digit integer that serde_json reads as out of range), and rows written before the api
//! refused them may still exist. Decoding such a row into `Value` fails, and with it every
//! listing that reads the row. These types decode what they can and, for the rest, keep the
//! stored text under [`UNREADABLE`], so one bad row never breaks a listing.
//!
//! Used by [`crate::task::TaskRecord`] (`#[sqlx(try_from = …)]`) and the ledger listing.

use serde_json::{json, Value};
use sqlx::{
    decode::Decode,
    error::BoxDynError,
    postgres::{PgTypeInfo, PgValueFormat, PgValueRef},
    types::Type,
    Postgres, ValueRef,
};

/// The key of the object that stands in for a value that could not be read:
/// `{"unreadableJson": {"reason": "...", "text": "<the stored JSON text>"}}`.
pub const UNREADABLE: &str = "unreadableJson";

/// The stored JSON text of a `json`/`jsonb` value (binary `jsonb` starts with its version
/// byte, 1; no JSON text starts with that byte).
fn text<'r>(value: &PgValueRef<'r>) -> Result<&'r [u8], BoxDynError> {
    let buf = value.as_bytes()?;
    Ok(match buf.split_first() {
        Some((1, rest)) if value.format() == PgValueFormat::Binary => rest,
        _ => buf,
    })
}

/// `bytes` as a `Value`, or the stand-in that carries the text and why it failed.
pub fn read(bytes: &[u8]) -> Value {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => v,
        Err(e) => json!({
            UNREADABLE: {
                "reason": e.to_string(),
                "text": String::from_utf8_lossy(bytes),
            }
        }),
    }
}

/// A `jsonb` value read leniently ([`read`]); SQL NULL reads as JSON null.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredJson(pub Value);

/// A nullable `jsonb` value read leniently.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredJsonOpt(pub Option<Value>);

/// A `jsonb` array (a task's error history) read leniently: the stand-in is wrapped in an
/// array so the column keeps its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredJsonArray(pub Value);

macro_rules! jsonb_type {
    ($t:ty) => {
        impl Type<Postgres> for $t {
            fn type_info() -> PgTypeInfo {
                <Value as Type<Postgres>>::type_info()
            }
            fn compatible(ty: &PgTypeInfo) -> bool {
                <Value as Type<Postgres>>::compatible(ty)
            }
        }
    };
}
jsonb_type!(StoredJson);
jsonb_type!(StoredJsonOpt);
jsonb_type!(StoredJsonArray);

impl<'r> Decode<'r, Postgres> for StoredJson {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        if value.is_null() {
            return Ok(Self(Value::Null));
        }
        Ok(Self(read(text(&value)?)))
    }
}

impl<'r> Decode<'r, Postgres> for StoredJsonOpt {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        if value.is_null() {
            return Ok(Self(None));
        }
        Ok(Self(Some(read(text(&value)?))))
    }
}

impl<'r> Decode<'r, Postgres> for StoredJsonArray {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        if value.is_null() {
            return Ok(Self(Value::Array(Vec::new())));
        }
        Ok(Self(match read(text(&value)?) {
            v @ Value::Array(_) => v,
            other => Value::Array(vec![other]),
        }))
    }
}

impl From<StoredJson> for Value {
    fn from(v: StoredJson) -> Self {
        v.0
    }
}

impl From<StoredJsonOpt> for Option<Value> {
    fn from(v: StoredJsonOpt) -> Self {
        v.0
    }
}

impl From<StoredJsonArray> for Value {
    fn from(v: StoredJsonArray) -> Self {
        v.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_text_is_kept_with_the_reason() {
        let big = format!("{{\"a\": 1{}}}", "0".repeat(400));
        let v = read(big.as_bytes());
        assert_eq!(v[UNREADABLE]["text"], big.as_str());
        assert!(v[UNREADABLE]["reason"].is_string());
        assert_eq!(read(br#"{"a": 1}"#), json!({"a": 1}));
    }
}
