//! The error envelope of DESIGN §6:
//! `{"error": {"code", "message", "fields"?}, "requestId"}`.

use std::collections::BTreeMap;

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde_json::json;

use crate::request_id;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub fields: BTreeMap<String, String>,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            fields: BTreeMap::new(),
            retry_after: None,
        }
    }

    pub fn validation(fields: BTreeMap<String, String>) -> Self {
        let names: Vec<&str> = fields.keys().map(String::as_str).collect();
        let mut e = Self::new(
            StatusCode::BAD_REQUEST,
            "validation_failed",
            format!("invalid request: check {}", names.join(", ")),
        );
        e.fields = fields;
        e
    }

    pub fn field(status: StatusCode, code: &'static str, field: &str, problem: &str) -> Self {
        let mut e = Self::new(status, code, format!("{field} {problem}"));
        e.fields.insert(field.to_string(), problem.to_string());
        e
    }

    pub fn unauthorized(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// A dependency failed: the details go to the log, the client gets a 503 to retry.
    pub fn unavailable(what: &str, err: impl std::fmt::Display) -> Self {
        tracing::error!(dependency = what, error = %err, "request failed on a dependency");
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "dependency_unavailable",
            format!("{what} is unavailable; retry shortly"),
        );
        e.retry_after = Some(2);
        e
    }

    /// Our own fault (a bug, an unexpected row): the cause goes to the log, the client gets
    /// a 500 that it should not retry blindly.
    pub fn internal(what: &str, err: impl std::fmt::Display) -> Self {
        tracing::error!(source = what, error = %err, "request failed on an internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal error; it was logged with this requestId",
        )
    }
}

/// Who is at fault for a database error, which decides its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbFault {
    /// Postgres is unreachable, restarting, out of connections or momentarily busy
    /// (deadlock, lock or statement timeout): 503 with `Retry-After`, a retry will do.
    Outage,
    /// A value the client sent that Postgres cannot store (`\u0000` in text or `jsonb`). The
    /// body checks refuse these first; this is the net behind them: 400.
    ClientValue,
    /// Anything else (a data error of our own making, a constraint we did not expect, a row
    /// that does not decode): 500, logged with its cause.
    Ours,
}

/// SQLSTATE codes and classes that mean "retry later", not "this request is wrong".
fn transient(code: &str) -> bool {
    matches!(
        &code[..code.len().min(2)],
        "08" // connection exception
        | "53" // insufficient resources: too many connections, out of memory or disk
        | "58" // system error (I/O)
    ) || matches!(
        code,
        "57P01" | "57P02" | "57P03" | "57P04" | "57P05" // shutdown, crash, starting up, dropped, idle timeout
        | "57014" // query cancelled (statement_timeout)
        | "40001" | "40P01" // serialization failure, deadlock
        | "55P03" // lock not available (lock_timeout)
        | "25006" // read-only transaction: a failover left us on a standby
    )
}

pub fn db_fault(e: &sqlx::Error) -> DbFault {
    use sqlx::Error as E;
    match e {
        E::Io(_)
        | E::Tls(_)
        | E::Protocol(_)
        | E::PoolTimedOut
        | E::PoolClosed
        | E::WorkerCrashed
        | E::BeginFailed => DbFault::Outage,
        E::Database(db) => match db.code().as_deref() {
            Some(code) if transient(code) => DbFault::Outage,
            // 22P05: `\u0000` in jsonb; 22021: a NUL byte in text.
            Some("22P05" | "22021") => DbFault::ClientValue,
            _ => DbFault::Ours,
        },
        _ => DbFault::Ours,
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match db_fault(&e) {
            DbFault::Outage => Self::unavailable("database", e),
            DbFault::ClientValue => {
                tracing::warn!(error = %e, "a value Postgres cannot store passed the body checks");
                Self::new(
                    StatusCode::BAD_REQUEST,
                    "unstorable_value",
                    "a value in the request cannot be stored (text must not contain \\u0000)",
                )
            }
            DbFault::Ours => Self::internal("database", e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code, "message": self.message });
        if !self.fields.is_empty() {
            error["fields"] = json!(self.fields);
        }
        let body = json!({ "error": error, "requestId": request_id::current() });
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}
