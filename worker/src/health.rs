//! Health of a worker process for container probes, which cannot ask a worker over HTTP (it
//! serves none): with `WORKER_HEALTH_FILE` set, the running worker rewrites that file every
//! heartbeat, and `worker health` (an exec probe) reads it back.
//!
//! * live: the file was rewritten recently, so the process and its runtime still run. Postgres
//!   or Redis being down does not make a worker dead (restarting it would not help);
//! * ready: live, and the last beat reached both Postgres and Redis (a worker can do nothing
//!   without either).

use std::{
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use redis::aio::ConnectionManager;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

const READY: &str = "ready";
/// Longest a single check may take, so a hung server cannot stall the beat.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Rewrites `path` every `interval` until `stop`: `ready`, or what is down. The file is
/// replaced by a rename, so a probe never reads half of it.
pub async fn beat(
    path: PathBuf,
    pool: PgPool,
    mut redis: ConnectionManager,
    interval: Duration,
    stop: CancellationToken,
) {
    let tmp = path.with_extension("tmp");
    loop {
        let postgres = tokio::time::timeout(
            CHECK_TIMEOUT,
            sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&pool),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        let redis_up = tokio::time::timeout(
            CHECK_TIMEOUT,
            redis::cmd("PING").query_async::<String>(&mut redis),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        let state = match (postgres, redis_up) {
            (true, true) => READY.to_string(),
            _ => format!(
                "not ready: postgres {}, redis {}",
                up(postgres),
                up(redis_up)
            ),
        };
        let written = async {
            tokio::fs::write(&tmp, format!("{state}\n")).await?;
            tokio::fs::rename(&tmp, &path).await
        }
        .await;
        if let Err(e) = written {
            tracing::warn!(error = %e, file = %path.display(), "cannot write the health file");
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

fn up(ok: bool) -> &'static str {
    if ok {
        "up"
    } else {
        "down"
    }
}

/// `Ok` when `path` was rewritten within `max_age` (and says ready when `ready` is asked);
/// else what is wrong, for the probe's output.
pub fn check(path: &Path, max_age: Duration, ready: bool) -> Result<(), String> {
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e} (is the worker running?)", path.display()))?;
    let age = meta
        .modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .unwrap_or_default();
    if age > max_age {
        return Err(format!(
            "last beat {}s ago (more than {}s)",
            age.as_secs(),
            max_age.as_secs()
        ));
    }
    if ready {
        let state = std::fs::read_to_string(path).map_err(|e| format!("{e}"))?;
        if state.trim() != READY {
            return Err(state.trim().to_string());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A private directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn file(name: &str, content: &str) -> (TempDir, PathBuf) {
        let dir = std::env::temp_dir().join(format!("worker-health-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("health");
        std::fs::write(&path, content).unwrap();
        (TempDir(dir), path)
    }

    #[test]
    fn fresh_ready_file_is_live_and_ready() {
        let (_d, path) = file("ready", "ready\n");
        assert_eq!(check(&path, Duration::from_secs(30), false), Ok(()));
        assert_eq!(check(&path, Duration::from_secs(30), true), Ok(()));
    }

    #[test]
    fn a_worker_that_lost_redis_is_live_but_not_ready() {
        let (_d, path) = file("lost", "not ready: postgres up, redis down\n");
        assert_eq!(check(&path, Duration::from_secs(30), false), Ok(()));
        let err = check(&path, Duration::from_secs(30), true).unwrap_err();
        assert!(err.contains("redis down"), "{err}");
    }

    #[test]
    fn a_stale_or_missing_file_is_not_live() {
        let (_d, path) = file("stale", "ready\n");
        std::thread::sleep(Duration::from_millis(1100));
        let err = check(&path, Duration::from_secs(0), false).unwrap_err();
        assert!(err.contains("last beat"), "{err}");
        let missing = path.with_file_name("absent");
        assert!(check(&missing, Duration::from_secs(30), false)
            .unwrap_err()
            .contains("is the worker running"));
    }
}
