//! Director reads (seeds/000): the organizer's ledger (real time) and the dashboard
//! reports (KPI views, cached in Redis), plus the admin trigger of a KPI refresh.

use std::collections::HashMap;

use axum::{
    extract::{Path, Query, State},
    http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use chrono::NaiveDate;
use engine::stored_json::StoredJson;
use jobs::{
    domain::{
        report_cache::Source,
        reports::{ReportFilter, Sort, DELIVERY_STATUSES, GUEST_STATUSES},
    },
    kinds::assignment::id_problem,
    kinds::kpi_refresh,
};
use serde_json::{json, Value};
use sqlx::Row;

use super::director::currency_problem;
use crate::openapi::{
    params::{IdempotencyKey, LedgerQuery, OrganizerId, ReportFilters},
    replies::Ledger,
    responses::*,
    schemas::Report,
};
use crate::{auth::Principal, error::ApiError, request_id, AppState};

/// The event types a report filters on.
pub const EVENT_TYPES: [&str; 2] = ["standard", "premium"];
/// The orders of a report (`jobs::domain::reports::Sort`).
pub const SORTS: [&str; 3] = ["created_at", "amount", "tickets"];
/// The most rows a report's `limit` asks for.
pub const MAX_LIMIT: i64 = 100_000;

fn bad(param: &str, problem: &str) -> ApiError {
    ApiError::field(StatusCode::BAD_REQUEST, "validation_failed", param, problem)
}

/// A calendar date written exactly `YYYY-MM-DD`: a four-digit year (0000 to 9999, the
/// range of OpenAPI's `format: date`, which Postgres and chrono both hold), two-digit month
/// and day. Longer or signed years are refused: chrono reads `+10000-01-01`, but such a
/// date is no report window, and its text form is not one Postgres reads.
pub fn calendar_date(raw: &str) -> Option<NaiveDate> {
    let b = raw.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    shape
        .then(|| NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok())
        .flatten()
}

fn date(params: &HashMap<String, String>, name: &str) -> Result<Option<NaiveDate>, ApiError> {
    match super::query_value(params, name) {
        None => Ok(None),
        Some(raw) => calendar_date(raw).map(Some).ok_or_else(|| {
            bad(
                name,
                "must be a date YYYY-MM-DD with a four-digit year (0000-01-01 to 9999-12-31)",
            )
        }),
    }
}

fn int(
    params: &HashMap<String, String>,
    name: &str,
    min: i64,
    max: i64,
) -> Result<Option<i64>, ApiError> {
    match super::query_value(params, name) {
        None => Ok(None),
        Some(raw) => match raw.parse::<i64>() {
            Ok(v) if (min..=max).contains(&v) => Ok(Some(v)),
            _ => Err(bad(
                name,
                &format!("must be a whole number from {min} to {max}"),
            )),
        },
    }
}

fn id(params: &HashMap<String, String>, name: &str) -> Result<Option<String>, ApiError> {
    match super::query_value(params, name) {
        None => Ok(None),
        Some(v) => match id_problem(v) {
            Some(problem) => Err(bad(name, problem)),
            None => Ok(Some(v.to_string())),
        },
    }
}

/// Parses and normalizes the standard filters (`from`, `to`, `status`, `organizerId`,
/// `eventId`, `eventType`, `currency`) and paging (`page`, `pageSize`, `sort`, `dir`,
/// `limit`). Unknown parameters are ignored; invalid ones are a 400 naming the parameter.
pub fn parse_query(
    params: &HashMap<String, String>,
    default_currency: &str,
) -> Result<ReportFilter, ApiError> {
    let mut q = ReportFilter::new(default_currency);
    q.from = date(params, "from")?;
    q.to = date(params, "to")?;
    if let (Some(from), Some(to)) = (q.from, q.to) {
        if from > to {
            return Err(bad("from", "must not be after to"));
        }
    }
    q.organizer_id = id(params, "organizerId")?;
    q.event_id = id(params, "eventId")?;
    if let Some(t) = super::query_value(params, "eventType") {
        if !EVENT_TYPES.contains(&t) {
            return Err(bad(
                "eventType",
                &format!("must be one of: {}", EVENT_TYPES.join(", ")),
            ));
        }
        q.event_type = Some(t.to_string());
    }
    if let Some(list) = params.get("status") {
        let mut statuses = Vec::new();
        for s in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if !GUEST_STATUSES.contains(&s) && !DELIVERY_STATUSES.contains(&s) {
                return Err(bad(
                    "status",
                    "must list statuses among pending, confirmed, scanned, queued, sent, delivered, read, failed",
                ));
            }
            statuses.push(s.to_string());
        }
        statuses.sort();
        statuses.dedup();
        q.statuses = statuses;
    }
    if let Some(c) = super::query_value(params, "currency") {
        if let Some(problem) = currency_problem(c) {
            return Err(bad("currency", problem));
        }
        q.currency = c.to_ascii_uppercase();
    }
    q.page = int(params, "page", 1, super::MAX_PAGE)?.unwrap_or(1);
    q.page_size = int(params, "pageSize", 1, super::MAX_PAGE_SIZE)?.unwrap_or(50);
    q.limit = int(params, "limit", 1, MAX_LIMIT)?;
    if let Some(s) = super::query_value(params, "sort") {
        q.sort = Sort::parse(s)
            .ok_or_else(|| bad("sort", &format!("must be one of: {}", SORTS.join(", "))))?;
    }
    if let Some(d) = super::query_value(params, "dir") {
        q.desc = match d {
            "desc" => true,
            "asc" => false,
            _ => return Err(bad("dir", "must be one of: asc, desc")),
        };
    }
    Ok(q)
}

/// Serves a report's JSON object text with this request's id added, without parsing it.
fn respond(text: String, source: Source) -> Response {
    let id = serde_json::to_string(&request_id::current()).unwrap_or_else(|_| "\"\"".into());
    let body = match text.strip_prefix('{') {
        Some(rest) if rest.trim_start().starts_with('}') => format!("{{\"requestId\":{id}}}"),
        Some(rest) => format!("{{\"requestId\":{id},{rest}"),
        None => format!("{{\"requestId\":{id},\"data\":{text}}}"),
    };
    let tag = match source {
        Source::Cache => "hit",
        Source::Database => "miss",
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                HeaderName::from_static("x-cache"),
                HeaderValue::from_static(tag),
            ),
        ],
        body,
    )
        .into_response()
}

async fn report(
    state: &AppState,
    name: &'static str,
    params: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let q = parse_query(params, &state.config.core.default_currency)?;
    let ttl = if name == "legacy-overview" {
        state.config.core.director_cache_ttl
    } else {
        state.config.core.director_report_cache_ttl
    };
    let pool = state.pool.clone();
    let (text, source) = state
        .report_cache
        .get_or(name, &q.cache_key(), ttl, || async move {
            kpi_refresh::compute(&pool, name, &q).await
        })
        .await?;
    Ok(respond(text, source))
}

macro_rules! report_route {
    ($fn_name:ident, $report:literal, $path:literal, $summary:literal) => {
        #[utoipa::path(get, path = $path, tag = "director", summary = $summary,
            params(ReportFilters),
            responses(
                (status = 200, description = "`{meta, data}`; header `x-cache: hit|miss`", body = Report),
                Invalid, Unauthorized, PostgresDown, OutOfScope, TooLarge))]
        pub async fn $fn_name(
            State(state): State<AppState>,
            _principal: Principal,
            Query(params): Query<HashMap<String, String>>,
        ) -> Result<Response, ApiError> {
            report(&state, $report, &params).await
        }
    };
}

report_route!(
    overview,
    "overview",
    "/director/reports/overview",
    "Overview: tickets, assigned value, open debt, active organizers, guests and deliveries by status"
);
report_route!(
    legacy_overview,
    "legacy-overview",
    "/director/overview",
    "Legacy overview (cached DIRECTOR_CACHE_TTL_SECONDS)"
);
report_route!(
    top_organizers,
    "top-organizers",
    "/director/reports/top-organizers",
    "Organizer ranking"
);
report_route!(
    tickets_usage,
    "tickets-usage",
    "/director/reports/tickets-usage",
    "Assignments per event"
);
report_route!(
    debt_aging,
    "debt-aging",
    "/director/reports/debt-aging",
    "Open debt by age bucket (FIFO payments)"
);

/// `GET /director/organizers/{id}/ledger`: entries newest first (`page`, `pageSize`), totals in
/// one currency (`currency`, default `DEFAULT_CURRENCY`) with the real-time debt
/// Σ assignments − Σ payments, and the balance of every currency the organizer uses.
#[utoipa::path(get, path = "/director/organizers/{id}/ledger", tag = "director",
    summary = "Organizer ledger, newest first, with totals and real-time debt",
    params(OrganizerId, LedgerQuery),
    responses(
        (status = 200, description = "`{organizerId, data, totals, debtCents, balances, meta}`", body = Ledger),
        (status = 404, description = "Unknown organizer", body = ErrorBody),
        Invalid, Unauthorized, PostgresDown, OutOfScope, TooLarge))]
pub async fn ledger(
    State(state): State<AppState>,
    _principal: Principal,
    Path(organizer): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    if id_problem(&organizer).is_some() {
        return Err(ApiError::not_found(format!("no organizer {organizer:?}")));
    }
    let q = parse_query(&params, &state.config.core.default_currency)?;
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM organizers WHERE id = $1")
        .bind(&organizer)
        .fetch_optional(&state.pool)
        .await?;
    if exists.is_none() {
        return Err(ApiError::not_found(format!("no organizer {organizer:?}")));
    }
    let rows = sqlx::query(
        "SELECT id, event_id, entry_type, tickets, tickets_equivalent, amount_cents, currency::text AS currency, \
                metadata, task_id, created_at, count(*) OVER () AS total \
         FROM director_ledger_entries WHERE organizer_id = $1 \
         ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3",
    )
    .bind(&organizer)
    .bind(q.page_size)
    .bind((q.page - 1) * q.page_size)
    .fetch_all(&state.pool)
    .await?;
    let total: i64 = match rows.first() {
        Some(r) => r.try_get("total")?,
        None => {
            sqlx::query_scalar(
                "SELECT count(*) FROM director_ledger_entries WHERE organizer_id = $1",
            )
            .bind(&organizer)
            .fetch_one(&state.pool)
            .await?
        }
    };
    let entries = rows
        .iter()
        .map(|r| {
            Ok(json!({
                "id": r.try_get::<uuid::Uuid, _>("id")?,
                "organizerId": organizer,
                "eventId": r.try_get::<Option<String>, _>("event_id")?,
                "entryType": r.try_get::<String, _>("entry_type")?,
                "tickets": r.try_get::<i32, _>("tickets")?,
                "ticketsEquivalent": r.try_get::<i32, _>("tickets_equivalent")?,
                "amountCents": r.try_get::<i64, _>("amount_cents")?,
                "currency": r.try_get::<String, _>("currency")?,
                // Leniently: one entry whose metadata does not decode still lists.
                "metadata": Value::from(r.try_get::<StoredJson, _>("metadata")?),
                "taskId": r.try_get::<uuid::Uuid, _>("task_id")?,
                "createdAt": r.try_get::<chrono::DateTime<chrono::Utc>, _>("created_at")?,
            }))
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    // Real time from the ledger itself (not the running totals), as the seed defines the debt.
    let balances = sqlx::query(
        "SELECT currency::text AS currency, sum(tickets)::bigint AS tickets, \
                sum(tickets_equivalent)::bigint AS te, \
                COALESCE(sum(amount_cents) FILTER (WHERE entry_type <> 'payment'), 0)::bigint AS assigned, \
                COALESCE(sum(amount_cents) FILTER (WHERE entry_type = 'payment'), 0)::bigint AS paid \
         FROM director_ledger_entries WHERE organizer_id = $1 GROUP BY currency ORDER BY currency",
    )
    .bind(&organizer)
    .fetch_all(&state.pool)
    .await?
    .iter()
    .map(|r| {
        let assigned: i64 = r.try_get("assigned")?;
        let paid: i64 = r.try_get("paid")?;
        Ok(json!({
            "currency": r.try_get::<String, _>("currency")?,
            "tickets": r.try_get::<i64, _>("tickets")?,
            "ticketsEquivalent": r.try_get::<i64, _>("te")?,
            "assignedCents": assigned,
            "paidCents": paid,
            "debtCents": assigned - paid,
        }))
    })
    .collect::<Result<Vec<Value>, sqlx::Error>>()?;
    let totals = balances
        .iter()
        .find(|b| b["currency"] == json!(q.currency))
        .cloned()
        .unwrap_or_else(|| {
            json!({ "currency": q.currency, "tickets": 0, "ticketsEquivalent": 0,
                    "assignedCents": 0, "paidCents": 0, "debtCents": 0 })
        });
    let pages = if total == 0 {
        0
    } else {
        (total + q.page_size - 1) / q.page_size
    };
    Ok(Json(json!({
        "organizerId": organizer,
        "data": entries,
        "totals": totals,
        "debtCents": totals["debtCents"],
        "balances": balances,
        "meta": { "page": q.page, "pageSize": q.page_size, "total": total, "pages": pages },
        "requestId": request_id::current(),
    }))
    .into_response())
}

/// `POST /director/kpis/refresh` (admin): a `kpi_refresh` task to follow.
#[utoipa::path(
    post,
    path = "/director/kpis/refresh",
    tag = "director",
    summary = "Refresh the KPI views now (task `kpi_refresh`; admin)",
    params(IdempotencyKey),
    responses(
        TaskAccepted,
        IdempotencyConflict,
        Invalid,
        Unauthorized,
        TooLarge,
        NotJson,
        PostgresDown,
        NotAdmin
    )
)]
pub async fn refresh_kpis(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !principal.admin {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "an admin token is required",
        ));
    }
    super::enqueue_on_request(
        &state,
        &principal,
        &headers,
        crate::enqueue_table::KPI_REFRESH.kind,
    )
    .await
}
