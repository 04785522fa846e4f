//! `GET /files/<key>?expires=&signature=`: downloads of the local-disk export store (used
//! when S3 is not configured). The link is the authorization: an HMAC over the key and the
//! expiry, so no bearer token is needed and a tampered or expired link is refused.

use std::collections::HashMap;

use axum::{
    body::Body,
    extract::{Path, Query, State},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use jobs::{exports::Format, storage::local::LinkError};

use crate::openapi::{
    params::{FileKey, FileLink},
    responses::*,
};
use crate::{error::ApiError, AppState};

#[utoipa::path(get, path = "/files/{*key}", tag = "director",
    summary = "Download of the local-disk export store (signed link, no token)",
    security(()),
    params(FileKey, FileLink),
    responses(
        (status = 200, description = "The file", content_type = "application/octet-stream", body = inline(Binary)),
        (status = 403, description = "Altered or incomplete link", body = ErrorBody),
        (status = 404, description = "File gone", body = ErrorBody),
        (status = 410, description = "Link expired", body = ErrorBody),
        StoreDown, TooLarge))]
pub async fn download(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let Some(store) = &state.local_files else {
        return Err(ApiError::not_found("no such file"));
    };
    let path = store
        .verify(
            &key,
            params.get("expires").map(String::as_str),
            params.get("signature").map(String::as_str),
        )
        .map_err(|e| match e {
            LinkError::Invalid => ApiError::new(
                StatusCode::FORBIDDEN,
                "invalid_signature",
                "this link is not valid (altered or incomplete)",
            ),
            LinkError::Expired => {
                ApiError::new(StatusCode::GONE, "link_expired", "this link has expired")
            }
            LinkError::Missing => ApiError::not_found("the file no longer exists"),
        })?;
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|_| ApiError::not_found("the file no longer exists"))?;
    let len = file.metadata().await.map(|m| m.len()).ok();
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("export")
        .to_string();
    let content_type = match name.rsplit('.').next().and_then(Format::parse) {
        Some(f) => f.content_type(),
        None => "application/octet-stream",
    };
    let mut resp = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
        file,
        256 * 1024,
    ))
    .into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Some(len) = len {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    Ok(resp)
}
