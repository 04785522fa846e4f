//! Data and tasks written straight into the test's schema (no HTTP): the director fixture,
//! tasks enqueued as the api would, and small readers.

use engine::{
    enqueue::{Enqueued, Enqueuer, Request as EnqueueRequest},
    transport::MessageQueue as Transport,
    KindSpec,
};
use jobs::testing::TestEnv;
use serde_json::{json, Value};
use uuid::Uuid;

/// The Redis transport of `env` (pushes go under its prefix).
pub fn transport(env: &TestEnv) -> Transport {
    Transport::new(
        env.redis.clone(),
        env.keys.clone(),
        env.config.queue_max_ready,
    )
}

/// A relay over `env`'s maintenance queue, its passes run by hand (`relay_queue`), pushing at
/// most `batch` tasks per pass.
pub fn relay(env: &TestEnv, batch: usize) -> engine::transport::relay::Relay {
    engine::transport::relay::Relay {
        pool: env.pool.clone(),
        queue: transport(env),
        notifier: engine::progress::Notifier::new(env.redis.clone(), env.keys.clone()),
        hooks: crate::kinds::hooks(),
        queues: vec![jobs::queues::MAINTENANCE.into()],
        repush_after: std::time::Duration::from_secs(30),
        interval: std::time::Duration::from_millis(100),
        batch,
        task_ttl: env.config.task_ttl,
        paused: Default::default(),
        positions: Default::default(),
    }
}

/// Creates a task of `spec` directly (as the api would, without HTTP), as the demo requester.
pub async fn enqueue(env: &TestEnv, spec: &KindSpec<jobs::Services>, params: Value) -> Uuid {
    let enqueuer = Enqueuer::new(env.pool.clone(), transport(env), env.config.task_ttl);
    let outcome = enqueuer
        .enqueue(EnqueueRequest {
            kind: spec.info(),
            params,
            requester: "demo",
            idempotency_key: None,
            request_id: None,
            run_at: None,
        })
        .await
        .unwrap();
    match outcome {
        Enqueued::Created(rec) => rec.id,
        other => panic!("unexpected {other:?}"),
    }
}

/// Params of an `assignment` task of `org_demo` (prices in cents, MXN).
pub fn assignment_params(event: &str, tickets: i32, price_cents: i64) -> Value {
    json!({
        "organizerId": "org_demo", "eventId": event, "type": "prepaid",
        "tickets": tickets, "priceCents": price_cents, "currency": "MXN", "metadata": {}
    })
}

/// Ledger entries written by `task` (exactly-once effects show as 0 or 1).
pub async fn ledger_rows_for(env: &TestEnv, task: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM director_ledger_entries WHERE task_id = $1")
        .bind(task)
        .fetch_one(&env.pool)
        .await
        .unwrap()
}

/// Fixture (MXN unless noted), ages as of 2025-12-31:
///  1 org_demo ev_demo    assign_prepaid 100 t (eq 100) 35000  2025-08-01
///  2 org_demo ev_premium assign_loan     10 t (eq  20) 20000  2025-10-15
///  3 org_demo            payment                       40000  2025-11-01
///  4 org_demo ev_demo    assign_prepaid   5 t (eq   5)  5000  2025-12-20
///  5 org_acme ev_acme    assign_prepaid  50 t (eq  50) 10000  2025-11-20
///  6 org_acme            payment                       15000  2025-12-01  (credit 5000)
///  7 org_demo ev_demo    assign_prepaid   7 t (eq   7)   700 USD 2025-12-05
pub async fn director_fixture(env: &TestEnv) {
    env.seed_demo().await;
    sqlx::raw_sql(
        "INSERT INTO events (id, organizer_id, name, type) VALUES ('ev_acme', 'org_acme', 'Acme Fest', 'standard');
         INSERT INTO director_ledger_entries (id, organizer_id, event_id, entry_type, tickets, tickets_equivalent, amount_cents, currency, task_id, created_at) VALUES
          (gen_random_uuid(), 'org_demo', 'ev_demo',    'assign_prepaid', 100, 100, 35000, 'MXN', gen_random_uuid(), '2025-08-01 10:00Z'),
          (gen_random_uuid(), 'org_demo', 'ev_premium', 'assign_loan',     10,  20, 20000, 'MXN', gen_random_uuid(), '2025-10-15 10:00Z'),
          (gen_random_uuid(), 'org_demo', NULL,         'payment',          0,   0, 40000, 'MXN', gen_random_uuid(), '2025-11-01 10:00Z'),
          (gen_random_uuid(), 'org_demo', 'ev_demo',    'assign_prepaid',   5,   5,  5000, 'MXN', gen_random_uuid(), '2025-12-20 10:00Z'),
          (gen_random_uuid(), 'org_acme', 'ev_acme',    'assign_prepaid',  50,  50, 10000, 'MXN', gen_random_uuid(), '2025-11-20 10:00Z'),
          (gen_random_uuid(), 'org_acme', NULL,         'payment',          0,   0, 15000, 'MXN', gen_random_uuid(), '2025-12-01 10:00Z'),
          (gen_random_uuid(), 'org_demo', 'ev_demo',    'assign_prepaid',   7,   7,   700, 'USD', gen_random_uuid(), '2025-12-05 10:00Z');
         INSERT INTO guests (id, event_id, name, status) VALUES
          ('g1', 'ev_demo', 'A', 'confirmed'), ('g2', 'ev_demo', 'B', 'confirmed'), ('g3', 'ev_demo', 'C', 'scanned'),
          ('g4', 'ev_acme', 'D', 'pending');
         INSERT INTO deliveries (id, event_id, guest_id, channel, kind, status) VALUES
          (gen_random_uuid(), 'ev_demo', 'g1', 'email', 'invitation', 'delivered'),
          (gen_random_uuid(), 'ev_demo', 'g2', 'whatsapp', 'invitation', 'failed');
         REFRESH MATERIALIZED VIEW mv_kpi_tickets_entregados;
         REFRESH MATERIALIZED VIEW mv_kpi_deuda_abierta;
         REFRESH MATERIALIZED VIEW mv_kpi_top_organizadores;",
    )
    .execute(&env.pool)
    .await
    .unwrap();
}

/// Every roll-up table (migrations 6 and 8), compared with a recomputation from the ledger
/// (`director_rollups_rebuild`, `director_kpi_day_rebuild`): rows that differ, per table.
pub async fn rollup_drift(pool: &sqlx::PgPool) -> Vec<(String, i64)> {
    // Temporary tables live in one session: everything on one connection.
    let mut conn = pool.acquire().await.unwrap();
    sqlx::raw_sql(
        "CREATE TEMP TABLE s_org AS SELECT * FROM director_kpi_org_total;
         CREATE TEMP TABLE s_org_day AS SELECT * FROM director_kpi_org_day;
         CREATE TEMP TABLE s_org_month AS SELECT * FROM director_kpi_org_month;
         CREATE TEMP TABLE s_ev_day AS SELECT * FROM director_kpi_event_day;
         CREATE TEMP TABLE s_ev AS SELECT * FROM director_kpi_event_total;
         CREATE TEMP TABLE s_debt AS SELECT * FROM director_debt_day WHERE unpaid_cents <> 0 OR unpaid_count <> 0;
         CREATE TEMP TABLE s_kday AS SELECT * FROM director_kpi_day;",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    sqlx::query("SELECT director_rollups_rebuild(), director_kpi_day_rebuild()")
        .execute(&mut *conn)
        .await
        .unwrap();
    let mut drift = Vec::new();
    for (table, snapshot) in [
        ("director_kpi_org_total", "s_org"),
        ("director_kpi_org_day", "s_org_day"),
        ("director_kpi_org_month", "s_org_month"),
        ("director_kpi_event_day", "s_ev_day"),
        ("director_kpi_event_total", "s_ev"),
        ("director_debt_day", "s_debt"),
        ("director_kpi_day", "s_kday"),
    ] {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM ((SELECT * FROM {snapshot} EXCEPT SELECT * FROM {table}) \
             UNION ALL (SELECT * FROM {table} EXCEPT SELECT * FROM {snapshot})) d"
        ))
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        drift.push((table.to_string(), n));
    }
    drift
}

/// Waits (up to 20 s) until another session waits on a row lock in a statement containing
/// `statement` (e.g. `organizer_balances`): a task's attempt is then inside its transaction,
/// held by a lock the test took. Panics with `what` when it never gets there.
pub async fn wait_until_blocked_in(pool: &sqlx::PgPool, statement: &str, what: &str) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
             AND query LIKE '%' || $1 || '%' AND pid <> pg_backend_pid()",
        )
        .bind(statement)
        .fetch_one(pool)
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
