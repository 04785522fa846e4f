//! The S3 store: aws-sdk-s3 with static credentials against AWS or any S3-compatible server.
//! Large files go up as a multipart upload read part by part from disk (never whole in
//! memory), several parts at once; a failed or cancelled upload is aborted so no parts are
//! left behind.

use std::time::Duration;

use aws_sdk_s3::{
    config::{Credentials, Region},
    presigning::PresigningConfig,
    primitives::{ByteStream, Length},
    types::{CompletedMultipartUpload, CompletedPart},
    Client,
};
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};

use super::{Listed, StorageError, Upload, UploadProgress, EXPORTS_PREFIX};
use crate::config::S3Config;

/// Parts uploaded at once: enough to hide per-request latency, few enough to keep memory and
/// sockets small (each part is streamed from the file).
const PARTS_IN_FLIGHT: usize = 4;

#[derive(Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    part_bytes: u64,
}

impl S3Store {
    pub fn new(cfg: &S3Config, part_bytes: usize) -> Self {
        // rustls on ring: the TLS stack reqwest already builds, not aws-lc's C build.
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let mut b = aws_sdk_s3::Config::builder()
            .behavior_version_latest()
            .http_client(http)
            .region(Region::new(cfg.region.clone()))
            .credentials_provider(Credentials::new(
                cfg.access_key_id.clone(),
                cfg.secret_access_key.clone(),
                None,
                None,
                "taquilla-env",
            ))
            .force_path_style(cfg.force_path_style);
        if let Some(endpoint) = &cfg.endpoint {
            b = b.endpoint_url(endpoint);
        }
        Self {
            client: Client::from_conf(b.build()),
            bucket: cfg.bucket.clone(),
            part_bytes: part_bytes as u64,
        }
    }

    /// Creates the bucket when it does not exist yet (development and tests; production
    /// buckets are made by whoever owns the account).
    pub async fn ensure_bucket(&self) -> Result<(), StorageError> {
        if self
            .client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .is_ok()
        {
            return Ok(());
        }
        match self
            .client
            .create_bucket()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let owned = e
                    .as_service_error()
                    .is_some_and(|se| se.is_bucket_already_owned_by_you());
                if owned {
                    Ok(())
                } else {
                    Err(StorageError::failed(
                        aws_sdk_s3::error::DisplayErrorContext(e),
                    ))
                }
            }
        }
    }

    pub async fn put(
        &self,
        upload: &Upload<'_>,
        progress: &impl UploadProgress,
    ) -> Result<u64, StorageError> {
        let size = tokio::fs::metadata(upload.file)
            .await
            .map_err(StorageError::failed)?
            .len();
        let disposition = format!("attachment; filename=\"{}\"", upload.filename);
        if size <= self.part_bytes {
            let body = ByteStream::from_path(upload.file)
                .await
                .map_err(StorageError::failed)?;
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(upload.key)
                .content_type(upload.content_type)
                .content_disposition(disposition)
                .body(body)
                .send()
                .await
                .map_err(|e| StorageError::failed(aws_sdk_s3::error::DisplayErrorContext(e)))?;
            progress.sent(size).await?;
            return Ok(size);
        }
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(upload.key)
            .content_type(upload.content_type)
            .content_disposition(disposition)
            .send()
            .await
            .map_err(|e| StorageError::failed(aws_sdk_s3::error::DisplayErrorContext(e)))?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| StorageError::failed("S3 returned no upload id"))?
            .to_string();
        match self.send_parts(upload, &upload_id, size, progress).await {
            Ok(parts) => {
                let done = self
                    .client
                    .complete_multipart_upload()
                    .bucket(&self.bucket)
                    .key(upload.key)
                    .upload_id(&upload_id)
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .set_parts(Some(parts))
                            .build(),
                    )
                    .send()
                    .await;
                if let Err(e) = done {
                    self.abort(upload.key, &upload_id).await;
                    return Err(StorageError::failed(
                        aws_sdk_s3::error::DisplayErrorContext(e),
                    ));
                }
                Ok(size)
            }
            Err(e) => {
                self.abort(upload.key, &upload_id).await;
                Err(e)
            }
        }
    }

    async fn send_parts(
        &self,
        upload: &Upload<'_>,
        upload_id: &str,
        size: u64,
        progress: &impl UploadProgress,
    ) -> Result<Vec<CompletedPart>, StorageError> {
        let count = size.div_ceil(self.part_bytes);
        let mut sent = 0u64;
        let mut parts: Vec<CompletedPart> = Vec::with_capacity(count as usize);
        let mut uploads = futures::stream::iter(0..count)
            .map(|i| {
                let offset = i * self.part_bytes;
                let len = self.part_bytes.min(size - offset);
                async move {
                    let body = ByteStream::read_from()
                        .path(upload.file)
                        .offset(offset)
                        .length(Length::Exact(len))
                        .build()
                        .await
                        .map_err(StorageError::failed)?;
                    let number = i as i32 + 1;
                    let out = self
                        .client
                        .upload_part()
                        .bucket(&self.bucket)
                        .key(upload.key)
                        .upload_id(upload_id)
                        .part_number(number)
                        .content_length(len as i64)
                        .body(body)
                        .send()
                        .await
                        .map_err(|e| {
                            StorageError::failed(aws_sdk_s3::error::DisplayErrorContext(e))
                        })?;
                    Ok::<_, StorageError>((
                        len,
                        CompletedPart::builder()
                            .part_number(number)
                            .set_e_tag(out.e_tag().map(str::to_string))
                            .build(),
                    ))
                }
            })
            .buffer_unordered(PARTS_IN_FLIGHT);
        while let Some((len, part)) = uploads.try_next().await? {
            sent += len;
            parts.push(part);
            progress.sent(sent).await?;
        }
        parts.sort_by_key(|p| p.part_number());
        Ok(parts)
    }

    async fn abort(&self, key: &str, upload_id: &str) {
        let aborted = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await;
        if let Err(e) = aborted {
            // Retention aborts it later (abort_stale_uploads).
            tracing::warn!(key, error = %aws_sdk_s3::error::DisplayErrorContext(e), "multipart upload not aborted");
        }
    }

    pub async fn presign(&self, key: &str, ttl: Duration) -> Result<String, StorageError> {
        // SigV4 pre-signed links live at most 7 days.
        let ttl = ttl.min(Duration::from_secs(7 * 86_400));
        let cfg = PresigningConfig::expires_in(ttl).map_err(StorageError::failed)?;
        let req = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(cfg)
            .await
            .map_err(|e| StorageError::failed(aws_sdk_s3::error::DisplayErrorContext(e)))?;
        Ok(req.uri().to_string())
    }

    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| StorageError::failed(aws_sdk_s3::error::DisplayErrorContext(e)))?;
        Ok(())
    }

    pub async fn list_older_than(
        &self,
        before: DateTime<Utc>,
    ) -> Result<Vec<Listed>, StorageError> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(EXPORTS_PREFIX)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| StorageError::failed(aws_sdk_s3::error::DisplayErrorContext(e)))?;
            for obj in page.contents() {
                let (Some(key), Some(modified)) = (obj.key(), obj.last_modified()) else {
                    continue;
                };
                let Some(modified) = DateTime::from_timestamp(modified.secs(), 0) else {
                    continue;
                };
                if modified < before {
                    out.push(Listed {
                        key: key.to_string(),
                        modified,
                    });
                }
            }
        }
        Ok(out)
    }

    pub async fn abort_stale_uploads(&self, before: DateTime<Utc>) -> Result<usize, StorageError> {
        let listed = self
            .client
            .list_multipart_uploads()
            .bucket(&self.bucket)
            .prefix(EXPORTS_PREFIX)
            .send()
            .await
            .map_err(|e| StorageError::failed(aws_sdk_s3::error::DisplayErrorContext(e)))?;
        let mut aborted = 0;
        for u in listed.uploads() {
            let started = u
                .initiated()
                .and_then(|t| DateTime::from_timestamp(t.secs(), 0));
            if let (Some(key), Some(id), Some(started)) = (u.key(), u.upload_id(), started) {
                if started < before {
                    self.abort(key, id).await;
                    aborted += 1;
                }
            }
        }
        Ok(aborted)
    }
}
