//! `POST /director/reports/exports` (seeds/000, "Reportes como trabajos asíncronos"): a
//! validated, normalized export request becomes a `report_export` task; the client follows
//! it at `/director/reports/tasks/:id` and fetches `…/result` for the link.

use std::collections::{hash_map::Entry, HashMap};

use axum::{extract::State, http::HeaderMap, response::Response};
use jobs::exports::{ExportParams, Filters, Format, Report};
use serde_json::Value;

use super::reports::parse_query;
use crate::openapi::{bodies, params::IdempotencyKey, responses::*};
use crate::{auth::Principal, body::JsonObject, error::ApiError, AppState};

/// The synchronous reports' filters, accepted at the top level of the body or inside a
/// `filters` object. `page` and `pageSize` are checked like theirs but an export holds every
/// row.
const FILTERS: [&str; 12] = [
    "from",
    "to",
    "status",
    "organizerId",
    "eventId",
    "eventType",
    "currency",
    "sort",
    "dir",
    "limit",
    "page",
    "pageSize",
];

/// The most addresses `notifyEmails` may list.
pub const MAX_NOTIFY: usize = 20;

fn email_check(s: &str) -> Option<&'static str> {
    const PROBLEM: &str = "must be an e-mail address";
    let Some((local, domain)) = s.split_once('@') else {
        return Some(PROBLEM);
    };
    let bad = local.is_empty()
        || domain.len() < 3
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || domain.contains('@')
        || s.len() > 254
        || s.chars()
            .any(|c| c.is_whitespace() || "<>,;\"()[]\\".contains(c));
    bad.then_some(PROBLEM)
}

/// A filter's JSON value as the query-string text the report parser reads: numbers for the
/// numeric filters, a string or a list of strings for `status`, strings for the rest.
fn as_param(name: &str, v: &Value) -> Result<String, &'static str> {
    match (name, v) {
        (_, Value::String(s)) => Ok(s.clone()),
        ("limit" | "page" | "pageSize", Value::Number(n)) => Ok(n.to_string()),
        ("limit" | "page" | "pageSize", _) => Err("must be a whole number"),
        ("status", Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .map(|v| v.join(","))
            .ok_or("must be a string or an array of strings"),
        _ => Err("must be a string"),
    }
}

/// `{report, format, …filters, notifyEmails?}` → 202 with a `report_export` task.
#[utoipa::path(post, path = "/director/reports/exports", tag = "director",
    summary = "Export a report as CSV or XLSX (task `report_export`)",
    params(IdempotencyKey), request_body = bodies::ExportRequest,
    responses(TaskAccepted, IdempotencyConflict, Invalid, Unauthorized, TooLarge, NotJson, PostgresDown, OutOfScope))]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    mut body: JsonObject,
) -> Result<Response, ApiError> {
    let report = body.required_enum("report", &Report::NAMES);
    let format = body.required_enum("format", &Format::NAMES);
    let notify = body.optional_str_array("notifyEmails", MAX_NOTIFY, email_check);
    let mut params: HashMap<String, String> = HashMap::new();
    for name in FILTERS {
        if let Some(v) = body.optional_value(name) {
            match as_param(name, &v) {
                Ok(text) => {
                    params.insert(name.to_string(), text);
                }
                Err(problem) => body.fail(name, problem),
            }
        }
    }
    if let Some(nested) = body.optional_value("filters") {
        match nested {
            Value::Object(map) => {
                for (name, v) in map {
                    let field = format!("filters.{name}");
                    if v.is_null() {
                        continue;
                    }
                    if !FILTERS.contains(&name.as_str()) {
                        body.fail(&field, "is not a known filter");
                        continue;
                    }
                    let text = as_param(&name, &v);
                    match (params.entry(name), text) {
                        (Entry::Occupied(_), _) => {
                            body.fail(&field, "is also given at the top level")
                        }
                        (Entry::Vacant(slot), Ok(text)) => {
                            slot.insert(text);
                        }
                        (Entry::Vacant(_), Err(problem)) => body.fail(&field, problem),
                    }
                }
            }
            _ => body.fail("filters", "must be an object"),
        }
    }
    let run_at = body.optional_start("runAt");
    body.finish()?;
    let q = parse_query(&params, &state.config.core.default_currency)?;
    let (Some(report), Some(format)) = (
        report.as_deref().and_then(Report::parse),
        format.as_deref().and_then(Format::parse),
    ) else {
        return Err(ApiError::validation(Default::default()));
    };
    let currency_requested = params.get("currency").is_some_and(|c| !c.trim().is_empty());
    let params = ExportParams {
        report,
        format,
        filters: Filters::from_query(&q, currency_requested),
        notify_emails: notify.unwrap_or_default(),
    };
    let params = serde_json::to_value(params).map_err(|e| ApiError::internal("encoder", e))?;
    super::enqueue(
        &state,
        &principal,
        &headers,
        crate::enqueue_table::REPORT_EXPORT.kind,
        params,
        run_at,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(email_check("ana@example.com"), None);
        assert_eq!(email_check("a.b+c@mail.example.mx"), None);
        for bad in [
            "",
            "ana",
            "@x.com",
            "ana@",
            "ana@com",
            "ana@@x.com",
            "a b@x.com",
            "<a@x.com>",
        ] {
            assert!(email_check(bad).is_some(), "{bad:?} accepted");
        }
    }
}
