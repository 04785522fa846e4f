//! Browsing `tasks` for operators: every filter of the console's task list (queue, kind,
//! status, requester, created/finished windows, JSON containment in params or result) as one
//! [`TaskFilter`], and the reads over it: a keyset page, a count, and ids in batches for a
//! bulk action.
//!
//! Pages walk the primary key backwards: task ids are UUIDv7 (time-ordered, see
//! `enqueue`), so "newest first, before this id" is an index range on `tasks_pkey` whatever
//! the filters, and no index is added to the accept path. A creation window is turned into an
//! id range too (with a minute of slack for the clock of the process that made the id; the
//! exact `created_at` bound is still applied).

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::task::{TaskRecord, TaskStatus};

/// Where a JSON search looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SearchIn {
    #[default]
    Params,
    Result,
    /// Params or result.
    Either,
}

/// What to list; every field narrows (`None`/empty = any).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskFilter {
    pub queue: Option<String>,
    pub kind: Option<String>,
    pub statuses: Vec<TaskStatus>,
    pub requester: Option<String>,
    pub created_from: Option<DateTime<Utc>>,
    pub created_to: Option<DateTime<Utc>>,
    pub finished_from: Option<DateTime<Utc>>,
    pub finished_to: Option<DateTime<Utc>>,
    /// A JSON object the params (or result) must contain (`@>`).
    pub contains: Option<Value>,
    pub search_in: SearchIn,
}

/// The smallest UUIDv7 of a millisecond: every id made at or after `at` is ≥ it.
fn v7_floor(at: DateTime<Utc>) -> Uuid {
    let ms = at.timestamp_millis().max(0) as u64;
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    bytes[6] = 0x70;
    bytes[8] = 0x80;
    Uuid::from_bytes(bytes)
}

/// Slack between an id's clock and `created_at` (both from the same process in practice).
const ID_CLOCK_SLACK: Duration = Duration::minutes(1);

impl TaskFilter {
    /// Appends ` AND …` for every set field.
    fn push_where<'a>(&'a self, q: &mut QueryBuilder<'a, Postgres>) {
        if let Some(v) = &self.queue {
            q.push(" AND queue = ").push_bind(v);
        }
        if let Some(v) = &self.kind {
            q.push(" AND kind = ").push_bind(v);
        }
        if !self.statuses.is_empty() {
            let names: Vec<&str> = self.statuses.iter().map(|s| s.as_str()).collect();
            q.push(" AND status = ANY(").push_bind(names).push(")");
        }
        if let Some(v) = &self.requester {
            q.push(" AND requester = ").push_bind(v);
        }
        if let Some(t) = self.created_from {
            q.push(" AND id >= ")
                .push_bind(v7_floor(t - ID_CLOCK_SLACK));
            q.push(" AND created_at >= ").push_bind(t);
        }
        if let Some(t) = self.created_to {
            q.push(" AND id < ").push_bind(v7_floor(t + ID_CLOCK_SLACK));
            q.push(" AND created_at < ").push_bind(t);
        }
        if let Some(t) = self.finished_from {
            q.push(" AND finished_at >= ").push_bind(t);
        }
        if let Some(t) = self.finished_to {
            q.push(" AND finished_at < ").push_bind(t);
        }
        if let Some(v) = &self.contains {
            match self.search_in {
                SearchIn::Params => {
                    q.push(" AND params @> ").push_bind(v);
                }
                SearchIn::Result => {
                    q.push(" AND result @> ").push_bind(v);
                }
                SearchIn::Either => {
                    q.push(" AND (params @> ")
                        .push_bind(v)
                        .push(" OR result @> ")
                        .push_bind(v)
                        .push(")");
                }
            }
        }
    }
}

/// One page, newest first, strictly older than `before` (the last id of the previous page).
/// Returns up to `limit` tasks and whether more follow.
pub async fn page(
    pool: &PgPool,
    filter: &TaskFilter,
    before: Option<Uuid>,
    limit: i64,
) -> Result<(Vec<TaskRecord>, bool), sqlx::Error> {
    let mut q = QueryBuilder::new(format!(
        "SELECT {} FROM tasks WHERE true",
        crate::store::RECORD_COLUMNS
    ));
    filter.push_where(&mut q);
    if let Some(b) = before {
        q.push(" AND id < ").push_bind(b);
    }
    q.push(" ORDER BY id DESC LIMIT ").push_bind(limit + 1);
    let mut rows: Vec<TaskRecord> = q.build_query_as().fetch_all(pool).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    Ok((rows, more))
}

/// How many tasks match (what a bulk action would touch, before its status condition).
pub async fn count(pool: &PgPool, filter: &TaskFilter) -> Result<i64, sqlx::Error> {
    let mut q = QueryBuilder::new("SELECT count(*) FROM tasks WHERE true");
    filter.push_where(&mut q);
    q.build_query_scalar().fetch_one(pool).await
}

/// Ids of matching tasks, newest first, older than `before`, at most `limit`: a bulk action
/// walks them batch by batch.
pub async fn ids(
    pool: &PgPool,
    filter: &TaskFilter,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Uuid>, sqlx::Error> {
    let mut q = QueryBuilder::new("SELECT id FROM tasks WHERE true");
    filter.push_where(&mut q);
    if let Some(b) = before {
        q.push(" AND id < ").push_bind(b);
    }
    q.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
    q.build_query_scalar().fetch_all(pool).await
}

/// The worker that holds (or last held) a task, `None` when none ever claimed it.
pub async fn worker_of(pool: &PgPool, id: Uuid) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT worker FROM tasks WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
        .map(Option::flatten)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v7_floor_orders_with_real_ids() {
        let now = Utc::now();
        let id = Uuid::now_v7();
        assert!(v7_floor(now - Duration::seconds(1)) < id);
        assert!(v7_floor(now + Duration::seconds(1)) > id);
        assert_eq!(v7_floor(now).get_version_num(), 7);
    }
}
