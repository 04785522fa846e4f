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
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        Self::unavailable("database", e)
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
