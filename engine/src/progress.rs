//! Progress and change notifications.
//!
//! `Notifier` publishes "task X changed" on the task's Redis channel, which wakes api
//! long-polls and event streams; `ProgressStore` keeps the fine-grained percent in the Redis
//! hash `task:<id>` between the stage changes that are persisted in Postgres (DESIGN §3).
//! Both are best effort: Postgres stays the truth and readers fall back to it.

use std::{collections::HashMap, time::Duration};

use redis::aio::ConnectionManager;
use uuid::Uuid;

use crate::redis_conn::Keys;

#[derive(Clone)]
pub struct Notifier {
    conn: ConnectionManager,
    keys: Keys,
}

impl Notifier {
    pub fn new(conn: ConnectionManager, keys: Keys) -> Self {
        Self { conn, keys }
    }

    /// Announces changes of `ids` without waiting (a Redis outage must not slow tasks down).
    pub fn changed(&self, ids: &[Uuid]) {
        if ids.is_empty() {
            return;
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("PUBLISH")
                .arg(self.keys.task_channel(*id))
                .arg(1)
                .ignore();
        }
        let mut conn = self.conn.clone();
        tokio::spawn(async move {
            let _: redis::RedisResult<()> = pipe.query_async(&mut conn).await;
        });
    }
}

/// Fine-grained progress of a running task, as stored in Redis.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveProgress {
    pub progress: i16,
    pub stage: Option<String>,
    pub message: Option<String>,
}

#[derive(Clone)]
pub struct ProgressStore {
    conn: ConnectionManager,
    keys: Keys,
    ttl: Duration,
}

impl ProgressStore {
    pub fn new(conn: ConnectionManager, keys: Keys, ttl: Duration) -> Self {
        Self { conn, keys, ttl }
    }

    pub async fn write(
        &self,
        id: Uuid,
        progress: i16,
        stage: &str,
        message: Option<&str>,
    ) -> redis::RedisResult<()> {
        let key = self.keys.task_progress(id);
        let mut conn = self.conn.clone();
        redis::pipe()
            .cmd("HSET")
            .arg(&key)
            .arg("progress")
            .arg(progress)
            .arg("stage")
            .arg(stage)
            .arg("message")
            .arg(message.unwrap_or(""))
            .ignore()
            .cmd("EXPIRE")
            .arg(&key)
            .arg(self.ttl.as_secs().max(1))
            .ignore()
            .cmd("PUBLISH")
            .arg(self.keys.task_channel(id))
            .arg(1)
            .ignore()
            .query_async(&mut conn)
            .await
    }

    pub async fn read(&self, id: Uuid) -> redis::RedisResult<Option<LiveProgress>> {
        let mut conn = self.conn.clone();
        let map: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.keys.task_progress(id))
            .query_async(&mut conn)
            .await?;
        let Some(progress) = map.get("progress").and_then(|p| p.parse().ok()) else {
            return Ok(None);
        };
        let non_empty = |k: &str| map.get(k).filter(|s| !s.is_empty()).cloned();
        Ok(Some(LiveProgress {
            progress,
            stage: non_empty("stage"),
            message: non_empty("message"),
        }))
    }
}
