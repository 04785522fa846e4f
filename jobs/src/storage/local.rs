//! The local-disk store: files under `EXPORT_DIR`, links signed with HMAC-SHA256 over the key
//! and the expiry, checked and served by the api (`GET /files/<key>?expires=&signature=`).
//! Works when the api and the workers share the directory (one machine, or a shared volume).

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{Listed, StorageError, EXPORTS_PREFIX};

type HmacSha256 = Hmac<Sha256>;

/// Why a local link is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum LinkError {
    /// Bad signature, bad key, or missing parameters: 403.
    Invalid,
    /// Past its expiry: 410.
    Expired,
    /// Signed, but the file is gone (retention ran): 404.
    Missing,
}

#[derive(Clone)]
pub struct LocalStore {
    root: PathBuf,
    base_url: String,
    secret: Vec<u8>,
}

/// Keys are made by us from ids and fixed words; anything else is refused, so a key can
/// never leave the root (`..`, absolute paths, odd characters).
pub fn key_is_safe(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 512
        && key.starts_with(EXPORTS_PREFIX)
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '.'))
        && key
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

impl LocalStore {
    pub fn new(
        root: PathBuf,
        base_url: String,
        secret: Option<String>,
    ) -> Result<Self, StorageError> {
        std::fs::create_dir_all(&root)
            .map_err(|e| StorageError::failed(format!("EXPORT_DIR {}: {e}", root.display())))?;
        let secret = match secret {
            Some(s) => s.into_bytes(),
            None => shared_secret(&root)?,
        };
        Ok(Self {
            root,
            base_url,
            secret,
        })
    }

    pub fn path_of(&self, key: &str) -> Option<PathBuf> {
        key_is_safe(key).then(|| self.root.join(key))
    }

    fn signature(&self, key: &str, expires: i64) -> HmacSha256 {
        let mut mac =
            HmacSha256::new_from_slice(&self.secret).expect("HMAC accepts keys of any length");
        mac.update(key.as_bytes());
        mac.update(b"\n");
        mac.update(expires.to_string().as_bytes());
        mac
    }

    pub fn signed_url(&self, key: &str, expires_at: DateTime<Utc>) -> String {
        let expires = expires_at.timestamp();
        let signature = hex::encode(self.signature(key, expires).finalize().into_bytes());
        format!(
            "{}/files/{key}?expires={expires}&signature={signature}",
            self.base_url
        )
    }

    /// Checks a link (constant-time signature comparison) and returns the file to serve.
    pub fn verify(
        &self,
        key: &str,
        expires: Option<&str>,
        signature: Option<&str>,
    ) -> Result<PathBuf, LinkError> {
        let (Some(expires), Some(signature)) = (expires, signature) else {
            return Err(LinkError::Invalid);
        };
        let expires: i64 = expires.parse().map_err(|_| LinkError::Invalid)?;
        let signature = hex::decode(signature).map_err(|_| LinkError::Invalid)?;
        let path = self.path_of(key).ok_or(LinkError::Invalid)?;
        self.signature(key, expires)
            .verify_slice(&signature)
            .map_err(|_| LinkError::Invalid)?;
        if expires < Utc::now().timestamp() {
            return Err(LinkError::Expired);
        }
        if !path.is_file() {
            return Err(LinkError::Missing);
        }
        Ok(path)
    }

    /// Moves a finished file into the store under `key`; returns its size.
    pub async fn put(&self, key: &str, file: &Path) -> Result<u64, StorageError> {
        let dest = self
            .path_of(key)
            .ok_or_else(|| StorageError::failed(format!("unsafe key {key:?}")))?;
        let src = file.to_path_buf();
        tokio::task::spawn_blocking(move || place(&src, &dest))
            .await
            .map_err(StorageError::failed)?
            .map_err(StorageError::failed)
    }

    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let Some(path) = self.path_of(key) else {
            return Ok(());
        };
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            // Drop the task's directory once empty (remove_dir refuses a non-empty one).
            let mut dir = path.parent();
            while let Some(d) = dir {
                if d == root || std::fs::remove_dir(d).is_err() {
                    break;
                }
                dir = d.parent();
            }
            Ok(())
        })
        .await
        .map_err(StorageError::failed)?
        .map_err(StorageError::failed)
    }

    pub async fn list_older_than(
        &self,
        before: DateTime<Utc>,
    ) -> Result<Vec<Listed>, StorageError> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let base = root.join(EXPORTS_PREFIX);
            let mut stack = vec![base];
            while let Some(dir) = stack.pop() {
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    continue;
                };
                for entry in entries.flatten() {
                    let path = entry.path();
                    let Ok(meta) = entry.metadata() else { continue };
                    if meta.is_dir() {
                        stack.push(path);
                        continue;
                    }
                    let modified: DateTime<Utc> = match meta.modified() {
                        Ok(t) => t.into(),
                        Err(_) => continue,
                    };
                    let Ok(rel) = path.strip_prefix(&root) else {
                        continue;
                    };
                    let key = rel.to_string_lossy().replace('\\', "/");
                    if modified < before && key_is_safe(&key) {
                        out.push(Listed { key, modified });
                    }
                }
            }
            out
        })
        .await
        .map_err(StorageError::failed)
    }
}

/// Moves the finished file into the store: a rename when on the same file system, else a
/// copy to a temporary name and a rename, so a reader never sees half a file.
fn place(src: &Path, dest: &Path) -> std::io::Result<u64> {
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if std::fs::rename(src, dest).is_err() {
        let partial = dest.with_extension("partial");
        std::fs::copy(src, &partial)?;
        std::fs::rename(&partial, dest)?;
        let _ = std::fs::remove_file(src);
    }
    Ok(std::fs::metadata(dest)?.len())
}

/// The signing key shared through the directory: created once (exclusive create, so two
/// processes starting together agree on one), then read by everyone.
fn shared_secret(root: &Path) -> Result<Vec<u8>, StorageError> {
    let path = root.join(".url-secret");
    let fresh = hex::encode(rand::random::<[u8; 32]>());
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(mut f) => {
            f.write_all(fresh.as_bytes())
                .and_then(|_| f.sync_all())
                .map_err(|e| StorageError::failed(format!("{}: {e}", path.display())))?;
            tracing::info!(path = %path.display(), "created the signing key of local export links");
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(StorageError::failed(format!("{}: {e}", path.display()))),
    }
    // The creator may still be writing: wait until the key is complete.
    for _ in 0..50 {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| StorageError::failed(format!("{}: {e}", path.display())))?;
        if text.trim().len() >= 64 {
            return Ok(text.trim().as_bytes().to_vec());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Err(StorageError::failed(format!(
        "{} holds no usable key; delete it or set FILE_URL_SECRET",
        path.display()
    )))
}
