//! The task list's filters, from the query string (or the bulk form) to an engine
//! [`TaskFilter`]; every bad value is a 400 naming its field.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDateTime, Utc};
use engine::{
    browse::{SearchIn, TaskFilter},
    TaskStatus,
};
use serde_json::{Map, Value};

use super::Error;

/// The filter fields, in the order the form shows them.
pub const FIELDS: [&str; 10] = [
    "queue",
    "kind",
    "status",
    "requester",
    "createdFrom",
    "createdTo",
    "finishedFrom",
    "finishedTo",
    "search",
    "in",
];

/// The filters as typed (to fill the form and the links again) and as parsed.
#[derive(Debug, Default)]
pub struct Filters {
    pub raw: BTreeMap<&'static str, String>,
    pub filter: TaskFilter,
    /// A search in results without a creation window got the last hours as its window.
    pub windowed: bool,
}

/// The window a search in results gets when none is given: `result` has no index (it is
/// written on the completion path), so such a search walks tasks newest first, and a day
/// few hours of them stay within the page budget at 1M tasks (BENCHMARKS.md, issue 14).
pub const RESULT_SEARCH_WINDOW_HOURS: i64 = 6;

impl Filters {
    pub fn get(&self, field: &str) -> &str {
        self.raw.get(field).map(String::as_str).unwrap_or("")
    }

    /// `a=b&c=d` of the set fields, for links that keep the filters.
    pub fn query(&self) -> String {
        self.raw
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }

    pub fn is_empty(&self) -> bool {
        self.filter == TaskFilter::default()
    }
}

/// Percent-encodes everything but the unreserved characters.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

const MAX_TEXT: usize = 200;
const MAX_SEARCH: usize = 2000;

fn text(field: &str, v: &str) -> Result<String, Error> {
    if v.len() > MAX_TEXT || v.contains('\0') {
        return Err(Error::field(
            field,
            "must be at most 200 characters, without NUL",
        ));
    }
    Ok(v.to_string())
}

/// `2026-12-01T10:30` (a datetime-local input, read as UTC) or RFC 3339.
fn time(field: &str, v: &str) -> Result<DateTime<Utc>, Error> {
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(t.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(v, fmt) {
            return Ok(t.and_utc());
        }
    }
    Err(Error::field(
        field,
        "must be a date and time: 2026-12-01T10:30 (UTC) or RFC 3339",
    ))
}

/// `organizerId=org_demo`, `a.b=3` (a path, then a JSON value or else a string), or a JSON
/// object: what params (or result) must contain.
pub fn search(v: &str) -> Result<Value, Error> {
    let bad = |p: &str| Error::field("search", p);
    if v.len() > MAX_SEARCH {
        return Err(bad("must be at most 2000 characters"));
    }
    let v = v.trim();
    if v.starts_with('{') {
        return match serde_json::from_str::<Value>(v) {
            Ok(obj @ Value::Object(_)) => Ok(obj),
            _ => Err(bad(
                "a JSON search must be an object, e.g. {\"organizerId\": \"org_demo\"}",
            )),
        };
    }
    let Some((path, value)) = v.split_once('=') else {
        return Err(bad(
            "write path=value (organizerId=org_demo, a.b=3) or a JSON object",
        ));
    };
    let keys: Vec<&str> = path.trim().split('.').map(str::trim).collect();
    if keys.iter().any(|k| k.is_empty()) {
        return Err(bad("the path before '=' needs names separated by dots"));
    }
    let value = value.trim();
    let mut leaf = match serde_json::from_str::<Value>(value) {
        Ok(v @ (Value::Number(_) | Value::Bool(_) | Value::Null | Value::String(_))) => v,
        _ => Value::String(value.to_string()),
    };
    for k in keys.iter().rev() {
        let mut m = Map::new();
        m.insert(k.to_string(), leaf);
        leaf = Value::Object(m);
    }
    Ok(leaf)
}

/// Parses the filter fields of `q` (unknown keys are left to the caller).
pub fn parse(q: &HashMap<String, String>) -> Result<Filters, Error> {
    let mut out = Filters::default();
    for field in FIELDS {
        let Some(v) = q.get(field).map(|s| s.trim()).filter(|s| !s.is_empty()) else {
            continue;
        };
        out.raw.insert(field, v.to_string());
        let f = &mut out.filter;
        match field {
            "queue" => {
                if !jobs::queues::ALL.contains(&v) {
                    return Err(Error::field(
                        "queue",
                        &format!("must be one of {}", jobs::queues::ALL.join(", ")),
                    ));
                }
                f.queue = Some(v.to_string());
            }
            "kind" => {
                if let Some(p) = jobs::kinds::assignment::id_problem(v) {
                    return Err(Error::field("kind", p));
                }
                f.kind = Some(v.to_string());
            }
            "status" => {
                f.statuses = v
                    .split(',')
                    .map(|s| {
                        TaskStatus::parse(s.trim()).ok_or_else(|| {
                            Error::field(
                                "status",
                                "must be pending, running, completed, failed, cancelled, retrying or dead",
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?;
            }
            "requester" => f.requester = Some(text("requester", v)?),
            "createdFrom" => f.created_from = Some(time(field, v)?),
            "createdTo" => f.created_to = Some(time(field, v)?),
            "finishedFrom" => f.finished_from = Some(time(field, v)?),
            "finishedTo" => f.finished_to = Some(time(field, v)?),
            "search" => f.contains = Some(search(v)?),
            "in" => {
                f.search_in = match v {
                    "params" => SearchIn::Params,
                    "result" => SearchIn::Result,
                    "either" => SearchIn::Either,
                    _ => return Err(Error::field("in", "must be params, result or either")),
                }
            }
            _ => unreachable!("every field of FIELDS is handled"),
        }
    }
    let f = &mut out.filter;
    if f.contains.is_some() && f.search_in != SearchIn::Params && f.created_from.is_none() {
        let from = (Utc::now() - chrono::Duration::hours(RESULT_SEARCH_WINDOW_HOURS))
            .format("%Y-%m-%dT%H:%M")
            .to_string();
        f.created_from = Some(time("createdFrom", &from)?);
        out.raw.insert("createdFrom", from);
        out.windowed = true;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_path_search_becomes_a_containment() {
        assert_eq!(
            search("organizerId=org_demo").unwrap(),
            json!({"organizerId": "org_demo"})
        );
        assert_eq!(search("a.b = 3").unwrap(), json!({"a": {"b": 3}}));
        assert_eq!(search("x=\"3\"").unwrap(), json!({"x": "3"}));
        assert_eq!(search("{\"k\": true}").unwrap(), json!({"k": true}));
        assert!(search("[1]").is_err());
        assert!(search("novalue").is_err());
        assert!(search(".a=1").is_err());
    }

    #[test]
    fn bad_fields_are_named() {
        let q = |k: &str, v: &str| HashMap::from([(k.to_string(), v.to_string())]);
        for (k, v) in [
            ("queue", "nope"),
            ("status", "done"),
            ("createdFrom", "yesterday"),
            ("in", "both"),
            ("requester", "a\0b"),
        ] {
            let err = parse(&q(k, v)).unwrap_err();
            assert!(err.message.starts_with(k), "{k}: {err:?}");
        }
        let mut result_search = q("search", "entryId=x");
        result_search.insert("in".into(), "result".into());
        let windowed = parse(&result_search).unwrap();
        assert!(windowed.windowed && windowed.filter.created_from.is_some());
        assert!(
            !parse(&q("search", "a=1")).unwrap().windowed,
            "params are indexed"
        );
        let ok = parse(&q("createdFrom", "2026-12-01T10:30")).unwrap();
        assert!(ok.filter.created_from.is_some());
        assert_eq!(ok.query(), "createdFrom=2026-12-01T10%3A30");
    }
}
