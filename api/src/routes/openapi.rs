//! `GET /openapi.json`: the HTTP surface as an OpenAPI 3.1 document (`api/src/openapi.json`,
//! kept true by `api/tests/openapi.rs`, which calls every documented route).

use axum::{
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
};

pub const DOCUMENT: &str = include_str!("../openapi.json");

pub async fn document() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        DOCUMENT,
    )
        .into_response()
}
