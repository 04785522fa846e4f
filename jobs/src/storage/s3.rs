//! The S3 store: aws-sdk-s3 with static credentials against AWS or any S3-compatible server.
//! Files go up as multipart uploads fed while they are written (`stream`); this module holds
//! the client, links, deletion and the listings retention needs.

use std::time::Duration;

use aws_sdk_s3::{
    config::{Credentials, Region},
    presigning::PresigningConfig,
    Client,
};
use chrono::{DateTime, Utc};

use super::{Listed, StorageError, EXPORTS_PREFIX};
use crate::config::S3Config;

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

    /// A multipart upload fed by a writer while the file is produced (see `stream`).
    pub async fn start_stream(
        &self,
        key: &str,
        content_type: &str,
        filename: &str,
    ) -> Result<(super::stream::PartWriter, super::stream::UploadJoin), StorageError> {
        super::stream::start(
            &self.client,
            &self.bucket,
            key,
            content_type,
            filename,
            self.part_bytes as usize,
        )
        .await
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
