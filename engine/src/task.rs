//! Tasks: the durable record of every unit of work (DESIGN §3). Their transitions are in
//! [`crate::store`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// A task's status: the only spelling of the `tasks.status` values in Rust (bound and read
/// as this type, the column's CHECK constraint holds the same list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum TaskStatus {
    Pending,
    Running,
    Completed,
    Failed,
    Cancelled,
    Retrying,
    Dead,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 7] = [
        Self::Pending,
        Self::Running,
        Self::Completed,
        Self::Failed,
        Self::Cancelled,
        Self::Retrying,
        Self::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Retrying => "retrying",
            Self::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// No further attempt will run (an operator may still re-drive `failed` and `dead`).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Failed | Self::Cancelled | Self::Dead
        )
    }
}

impl std::fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of `tasks`, as read by the api and by operators. Its JSON columns are read
/// leniently ([`crate::stored_json`]): a row whose JSON does not decode still lists.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TaskRecord {
    pub id: Uuid,
    pub kind: String,
    pub queue: String,
    pub status: TaskStatus,
    #[sqlx(try_from = "crate::stored_json::StoredJson")]
    pub params: Value,
    #[sqlx(try_from = "crate::stored_json::StoredJsonOpt")]
    pub result: Option<Value>,
    #[sqlx(try_from = "crate::stored_json::StoredJsonOpt")]
    pub error: Option<Value>,
    #[sqlx(try_from = "crate::stored_json::StoredJsonArray")]
    pub errors: Value,
    pub attempts: i32,
    pub max_attempts: i32,
    pub progress: i16,
    pub stage: Option<String>,
    pub requester: String,
    pub idempotency_key: Option<String>,
    pub run_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub cancel_requested: bool,
}

impl TaskRecord {
    pub fn status(&self) -> TaskStatus {
        self.status
    }
}

/// An error recorded for one attempt: what happened, whether it will be retried.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AttemptError {
    pub attempt: i32,
    pub code: String,
    pub message: String,
    pub at: DateTime<Utc>,
    /// When the next attempt is due, for a failure that will be retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<DateTime<Utc>>,
}

/// What creating a task of a kind needs: its name, queue and attempt budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindInfo {
    pub name: &'static str,
    pub queue: &'static str,
    pub max_attempts: i32,
}

/// A task that just ended without completing, as its kind's hook sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Ended {
    pub id: Uuid,
    /// `failed`, `dead` or `cancelled`.
    pub status: TaskStatus,
    /// The error the task ended with (`{code, message, ...}`), when one was recorded.
    pub error: Option<Value>,
}
