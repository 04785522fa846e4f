//! `GET /openapi.json`: the HTTP surface as an OpenAPI 3.1 document, derived from the code
//! (`crate::openapi`) when the router is built and served as built. `testkit/tests/openapi.rs`
//! checks that every documented route is routed and every routed one documented.

use axum::{
    body::Bytes,
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
    Extension,
};

use crate::openapi::responses::{AnyObject, TooLarge};

/// The serialized document, shared by every request.
#[derive(Clone)]
pub struct Document(Bytes);

impl Document {
    pub fn new(doc: &utoipa::openapi::OpenApi) -> Self {
        // Serializing a tree of strings, numbers and maps cannot fail.
        let json = serde_json::to_vec(doc).unwrap_or_default();
        Self(Bytes::from(json))
    }
}

#[utoipa::path(get, path = "/openapi.json", tag = "ops", summary = "This document",
    security(()),
    responses((status = 200, description = "OpenAPI 3.1", body = inline(AnyObject)), TooLarge))]
pub async fn document(Extension(doc): Extension<Document>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        doc.0,
    )
        .into_response()
}
