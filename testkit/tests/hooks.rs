//! A kind's hooks run in the transaction of the transition that ends (or re-drives) its
//! task, whoever makes it; a hook that fails with a bug does not keep the task from ending.

use engine::{
    actions::{self, CancelOutcome},
    kind::Ended,
    Done, JobError, Kind, KindSpec, Registry, TaskStatus,
};
use jobs::{queues, Ctx, Services};
use serde_json::json;
use sqlx::PgConnection;
use testkit::{fixtures::enqueue, TestApp};
use uuid::Uuid;

/// Writes its ended or re-driven tasks' stage; when `BROKEN`, then divides by zero.
struct Marks<const BROKEN: bool>;

impl<const BROKEN: bool> Kind for Marks<BROKEN> {
    type State = Services;
    const NAME: &'static str = if BROKEN { "marks_then_breaks" } else { "marks" };
    const QUEUE: &'static str = queues::MAINTENANCE;

    async fn run(_ctx: Ctx) -> Result<Done, JobError> {
        Ok(Done::Result(json!({})))
    }

    async fn on_terminal_failure(
        conn: &mut PgConnection,
        ended: &Ended,
    ) -> Result<(), sqlx::Error> {
        mark::<BROKEN>(conn, &[ended.id], &format!("ended {}", ended.status)).await
    }

    async fn on_redrive(conn: &mut PgConnection, ids: &[Uuid]) -> Result<(), sqlx::Error> {
        mark::<BROKEN>(conn, ids, "redriven").await
    }
}

async fn mark<const BROKEN: bool>(
    conn: &mut PgConnection,
    ids: &[Uuid],
    stage: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE tasks SET stage = $2 WHERE id = ANY($1)")
        .bind(ids)
        .bind(stage)
        .execute(&mut *conn)
        .await?;
    if BROKEN {
        sqlx::query("SELECT 1 / 0").execute(&mut *conn).await?;
    }
    Ok(())
}

async fn stage(app: &TestApp, id: Uuid) -> Option<String> {
    sqlx::query_scalar("SELECT stage FROM tasks WHERE id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_run_with_the_cancel_and_the_redrive_and_a_broken_one_is_rolled_back_alone() {
    let app = TestApp::spawn().await;
    let registry = Registry::default()
        .with::<Marks<false>>()
        .unwrap()
        .with::<Marks<true>>()
        .unwrap();
    let hooks = registry.hooks();

    // A working hook commits with the cancel, and with the re-drive.
    let id = enqueue(&app, &KindSpec::of::<Marks<false>>(), json!({})).await;
    let outcome = actions::cancel(&app.pool, &hooks, id, None).await.unwrap();
    assert!(
        matches!(outcome, CancelOutcome::Cancelled(_)),
        "{outcome:?}"
    );
    assert_eq!(stage(&app, id).await.as_deref(), Some("ended cancelled"));

    sqlx::query("UPDATE tasks SET status = 'dead' WHERE id = $1")
        .bind(id)
        .execute(&app.pool)
        .await
        .unwrap();
    let redriven = actions::redrive(&app.pool, &hooks, id, app.config.task_ttl)
        .await
        .unwrap()
        .expect("a dead task is re-driven");
    assert_eq!(redriven.status, TaskStatus::Pending);
    assert_eq!(stage(&app, id).await.as_deref(), Some("redriven"));

    // A hook that fails with a bug: its own write is rolled back, the cancel stands.
    let id = enqueue(&app, &KindSpec::of::<Marks<true>>(), json!({})).await;
    let outcome = actions::cancel(&app.pool, &hooks, id, None).await.unwrap();
    assert!(
        matches!(outcome, CancelOutcome::Cancelled(_)),
        "{outcome:?}"
    );
    let rec = engine::store::get(&app.pool, id, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.status, TaskStatus::Cancelled);
    assert_eq!(
        stage(&app, id).await,
        None,
        "the broken hook's write was rolled back"
    );
}
