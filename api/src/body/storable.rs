//! Whether client JSON can be stored in Postgres and read back. Everything a client sends
//! ends up in a `jsonb` column (task params, ledger metadata) and is decoded again into
//! `serde_json::Value` by the worker and by every listing, so a value that fails either way
//! poisons the queue and the listings. Such a body is refused with a 400 naming the field
//! before anything is written.
//!
//! Three things fail (checked against Postgres in `testkit/tests/poison_input.rs`):
//! * `\u0000` in a string or a key: Postgres refuses it in `jsonb` (and in `text`).
//! * Numbers near the `f64` limit: Postgres stores `1.7976931348623157e308` as a 309-digit
//!   `numeric` and writes it back without an exponent; serde_json reads such a long integer
//!   text approximately and overflows to "number out of range". Integers (`i64`/`u64`) and
//!   floats away from the limit come back; the rule clients see is |x| < 1e308.
//! * Nesting: serde_json reads at most 128 levels, and the task params wrap a body one level
//!   deeper; bodies are held to [`MAX_DEPTH`] levels.

use std::collections::BTreeMap;

use serde_json::{value::RawValue, Number, Value};

/// The deepest nesting of objects and arrays a body may have (the body itself is level 1).
pub const MAX_DEPTH: usize = 64;

/// At most this many problems are reported (a body of a thousand bad strings gets a short
/// answer).
const MAX_PROBLEMS: usize = 20;

const NUL: &str = "must not contain the character U+0000 (\\u0000)";

/// The problems of a body, keyed by field path (`metadata.items[2].note`); empty when it
/// can be stored and read back.
pub fn problems(body: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    walk(body, "", 1, &mut out);
    out
}

fn child(path: &str, key: &str) -> String {
    let key = key.replace('\0', "\\u0000");
    if path.is_empty() {
        key
    } else {
        format!("{path}.{key}")
    }
}

/// The top-level field of a path (`metadata` of `metadata.a.b[3]`), where a too deep nesting
/// is reported: the full path of the 65th level helps nobody.
fn top_field(path: &str) -> &str {
    let end = path.find(['.', '[']).unwrap_or(path.len());
    &path[..end]
}

fn walk(v: &Value, path: &str, depth: usize, out: &mut BTreeMap<String, String>) {
    if out.len() >= MAX_PROBLEMS {
        return;
    }
    let container = matches!(v, Value::Object(_) | Value::Array(_));
    if container && depth > MAX_DEPTH {
        out.entry(top_field(path).to_string()).or_insert_with(|| {
            format!("nests objects and arrays more than {MAX_DEPTH} levels deep")
        });
        return;
    }
    match v {
        Value::String(s) if s.contains('\0') => {
            out.insert(path.to_string(), NUL.to_string());
        }
        Value::Number(n) if !storable_number(n) => {
            out.insert(
                path.to_string(),
                format!("must be a number between -{MAX_NUMBER:e} and {MAX_NUMBER:e} (exclusive)"),
            );
        }
        Value::Object(map) => {
            for (key, item) in map {
                let path = child(path, key);
                if key.contains('\0') {
                    out.insert(path.clone(), format!("(the key) {NUL}"));
                }
                walk(item, &path, depth + 1, out);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &format!("{path}[{i}]"), depth + 1, out);
            }
        }
        _ => {}
    }
}

/// When serde_json cannot read a body that is otherwise well-formed JSON (a number such as
/// `1e400` or a 400-digit integer overflows `f64`), the path of the first such number and
/// the problem. Raw values are scanned without converting numbers, so the body is walked
/// down to the number that fails.
pub fn unreadable_field(bytes: &[u8]) -> Option<(String, String)> {
    let root: Box<RawValue> = serde_json::from_slice(bytes).ok()?;
    let path = first_unreadable(&root, String::new(), 1)?;
    let problem =
        format!("must be a number between -{MAX_NUMBER:e} and {MAX_NUMBER:e} (exclusive)");
    Some((if path.is_empty() { "body".into() } else { path }, problem))
}

fn first_unreadable(raw: &RawValue, path: String, depth: usize) -> Option<String> {
    if serde_json::from_str::<Value>(raw.get()).is_ok() || depth > MAX_DEPTH {
        return None;
    }
    let text = raw.get().trim_start();
    if text.starts_with('{') {
        let map: Vec<(String, Box<RawValue>)> =
            serde_json::from_str::<std::collections::BTreeMap<String, Box<RawValue>>>(text)
                .ok()?
                .into_iter()
                .collect();
        map.iter()
            .find_map(|(k, v)| first_unreadable(v, child(&path, k), depth + 1))
    } else if text.starts_with('[') {
        let items: Vec<Box<RawValue>> = serde_json::from_str(text).ok()?;
        items
            .iter()
            .enumerate()
            .find_map(|(i, v)| first_unreadable(v, format!("{path}[{i}]"), depth + 1))
    } else if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        Some(path)
    } else {
        None
    }
}

/// Numbers must stay below this magnitude: the documented rule (`StorableJson` in
/// `crate::openapi::schemas`), which also
/// keeps clear of the few floats next to the `f64` limit that do not come back
/// ([`survives_numeric`]).
pub const MAX_NUMBER: f64 = 1e308;

fn storable_number(n: &Number) -> bool {
    n.as_f64().is_some_and(|f| f.abs() < MAX_NUMBER) && survives_numeric(n)
}

/// Whether a number comes back from a `jsonb` column: the text Postgres writes for it
/// ([`numeric_text`]) is read again by serde_json.
pub fn survives_numeric(n: &Number) -> bool {
    if !n.is_f64() {
        return true;
    }
    numeric_text(&n.to_string()).is_some_and(|text| serde_json::from_str::<Number>(&text).is_ok())
}

/// The text Postgres' `numeric` output gives for a JSON number's text: every digit written
/// out, no exponent, as many decimals as the input's scale (its decimals minus its exponent,
/// at least 0), no sign on zero. `None` when `json` is not a JSON number.
pub fn numeric_text(json: &str) -> Option<String> {
    let (negative, rest) = match json.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, json),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i64>().ok()?),
        None => (rest, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int_part.is_empty()
        || !(int_part.bytes().chain(frac_part.bytes())).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let scale = (frac_part.len() as i64 - exponent).max(0) as usize;
    // The decimal point sits `point` digits into `digits` (may be negative or past its end).
    let digits = format!("{int_part}{frac_part}");
    let point = int_part.len() as i64 + exponent;
    // Digits before the point, then exactly `scale` after it, padding with zeros.
    let whole: String = if point <= 0 {
        String::new()
    } else {
        (0..point as usize)
            .map(|i| digits.as_bytes().get(i).map_or('0', |&b| b as char))
            .collect()
    };
    let whole = whole.trim_start_matches('0');
    let whole = if whole.is_empty() { "0" } else { whole };
    let fraction: String = (0..scale as i64)
        .map(|i| {
            let at = point + i;
            if at < 0 {
                '0'
            } else {
                digits
                    .as_bytes()
                    .get(at as usize)
                    .map_or('0', |&b| b as char)
            }
        })
        .collect();
    let zero = whole == "0" && fraction.bytes().all(|b| b == b'0');
    let sign = if negative && !zero { "-" } else { "" };
    Some(if scale == 0 {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{fraction}")
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn numeric_text_writes_every_digit() {
        for (json, pg) in [
            ("1.50e1", "15.0"),
            ("1.5e-3", "0.0015"),
            ("1E+2", "100"),
            ("123.456e-2", "1.23456"),
            ("-0.0", "0.0"),
            ("0e10", "0"),
            ("-12", "-12"),
            ("0.000e-5", "0.00000000"),
            ("1e-7", "0.0000001"),
        ] {
            assert_eq!(numeric_text(json).as_deref(), Some(pg), "{json}");
        }
        let max = numeric_text("1.7976931348623157e308").unwrap();
        assert_eq!(max.len(), 309);
        assert!(max.starts_with("17976931348623157000"));
    }

    #[test]
    fn the_largest_floats_are_refused_and_ordinary_numbers_pass() {
        let body = json!({
            "ok": [0, -1, 1.5, 1e300, -2.5e-300, 5e-324, u64::MAX, i64::MIN, 1e30],
            "max": f64::MAX,
            "min": f64::MIN,
        });
        let p = problems(&body);
        assert_eq!(p.keys().collect::<Vec<_>>(), ["max", "min"], "{p:?}");
    }

    #[test]
    fn nul_is_refused_at_any_depth_and_in_keys() {
        let body = json!({
            "metadata": {"notes": ["fine", "bad\u{0}"], "k\u{0}ey": 1},
            "name": "ok",
        });
        let p = problems(&body);
        assert!(p.contains_key("metadata.notes[1]"), "{p:?}");
        assert!(p.contains_key("metadata.k\\u0000ey"), "{p:?}");
        assert_eq!(p.len(), 2, "{p:?}");
    }

    #[test]
    fn nesting_is_limited_and_reported_on_the_top_field() {
        let mut deep = json!(1);
        for _ in 0..MAX_DEPTH {
            deep = json!([deep]);
        }
        // {"metadata": [[…1…]]}: the body is level 1, so MAX_DEPTH arrays go one too far.
        let p = problems(&json!({ "metadata": deep.clone() }));
        assert_eq!(p.keys().collect::<Vec<_>>(), ["metadata"], "{p:?}");
        let ok = problems(&json!({ "metadata": deep[0].clone() }));
        assert!(ok.is_empty(), "{ok:?}");
    }
}
