//! Where finished files live (DESIGN §7): an S3-compatible bucket when `S3_BUCKET` is set,
//! otherwise a directory on local disk whose links the api signs and serves. Both give a
//! link that stops working when the task expires, and both can list and delete what they
//! hold, for the retention job.

pub mod local;
pub mod s3;
pub mod stream;

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::ExportConfig;

/// Every key we write starts here, so retention can tell our objects from anything else in
/// a shared bucket.
pub const EXPORTS_PREFIX: &str = "exports/";

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The writer feeding a streaming upload went away before the end (cancel, failure).
    #[error("upload abandoned")]
    Cancelled,
    #[error("storage: {0}")]
    Failed(String),
}

impl StorageError {
    pub fn failed(e: impl std::fmt::Display) -> Self {
        Self::Failed(e.to_string())
    }
}

/// An object older than the retention horizon, found by [`Store::list_older_than`].
#[derive(Debug, Clone)]
pub struct Listed {
    pub key: String,
    pub modified: DateTime<Utc>,
}

#[derive(Clone)]
pub enum Store {
    S3(s3::S3Store),
    Local(local::LocalStore),
}

impl Store {
    pub fn from_config(cfg: &ExportConfig) -> Result<Self, StorageError> {
        match &cfg.s3 {
            Some(s3cfg) => Ok(Self::S3(s3::S3Store::new(s3cfg, cfg.part_bytes))),
            None => Ok(Self::Local(local::LocalStore::new(
                cfg.dir.clone(),
                cfg.public_base_url.clone(),
                cfg.url_secret.clone(),
            )?)),
        }
    }

    /// `"s3"` or `"local"`, for results and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::S3(_) => "s3",
            Self::Local(_) => "local",
        }
    }

    /// A GET link valid until `expires_at` (S3 caps pre-signed links at 7 days).
    pub async fn link(&self, key: &str, expires_at: DateTime<Utc>) -> Result<String, StorageError> {
        let ttl = (expires_at - Utc::now())
            .to_std()
            .unwrap_or(Duration::from_secs(1))
            .max(Duration::from_secs(1));
        match self {
            Self::S3(s) => s.presign(key, ttl).await,
            Self::Local(l) => Ok(l.signed_url(key, expires_at)),
        }
    }

    /// Deletes `key`; deleting what is not there is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match self {
            Self::S3(s) => s.delete(key).await,
            Self::Local(l) => l.delete(key).await,
        }
    }

    /// Our objects (under [`EXPORTS_PREFIX`]) last modified before `before`.
    pub async fn list_older_than(
        &self,
        before: DateTime<Utc>,
    ) -> Result<Vec<Listed>, StorageError> {
        match self {
            Self::S3(s) => s.list_older_than(before).await,
            Self::Local(l) => l.list_older_than(before).await,
        }
    }

    /// Multipart uploads a crashed worker never finished or aborted (S3 keeps their parts,
    /// and bills them, until aborted). Returns how many were aborted.
    pub async fn abort_stale_uploads(&self, before: DateTime<Utc>) -> Result<usize, StorageError> {
        match self {
            Self::S3(s) => s.abort_stale_uploads(before).await,
            Self::Local(_) => Ok(0),
        }
    }
}
