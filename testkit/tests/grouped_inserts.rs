//! The api's inserts grouped into shared statements (issue 15, accept): concurrent requests
//! share one statement and one commit, and each still gets exactly the outcome it would
//! have had alone — created, replayed or refused for its idempotency key, or its own error.

use std::time::Duration;

use engine::{
    enqueue::{Enqueued, Enqueuer, Request},
    store::{self, Inserted, NewTask},
    KindInfo,
};
use jobs::{kinds::noop::Noop, testing::TestEnv};
use serde_json::{json, Value};
use testkit::fixtures::transport;
use uuid::Uuid;

fn request<'a>(params: Value, key: Option<&'a str>) -> Request<'a> {
    Request {
        kind: KindInfo::of::<Noop>(),
        params,
        requester: "demo",
        idempotency_key: key,
        request_id: None,
        run_at: None,
    }
}

fn new_task(params: Value, key: Option<&str>) -> NewTask {
    let kind = KindInfo::of::<Noop>();
    NewTask {
        id: Uuid::now_v7(),
        kind: kind.name.into(),
        queue: kind.queue.into(),
        params,
        max_attempts: kind.max_attempts,
        requester: "demo".into(),
        idempotency_key: key.map(str::to_string),
        request_id: None,
        run_at: None,
        ttl: Duration::from_secs(3600),
        will_push: false,
    }
}

async fn count(env: &TestEnv, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&env.pool).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_share_statements_and_each_gets_its_own_outcome() {
    let env = TestEnv::new().await;
    let enqueuer = Enqueuer::new(env.pool.clone(), transport(&env), env.config.task_ttl);
    let keys: Vec<String> = (0..40).map(|i| format!("key-{i}")).collect();
    let mut calls = Vec::new();
    // 200 requests without a key; each of 20 keys sent twice with the same params (a retried
    // request) and each of 20 more sent twice with different params (a reused key).
    for i in 0..200 {
        calls.push((request(json!({ "n": i }), None), "plain"));
    }
    for (i, key) in keys.iter().enumerate() {
        let reused = i >= 20;
        calls.push((request(json!({ "k": i }), Some(key)), "keyed"));
        let second = if reused {
            json!({ "k": i, "other": true })
        } else {
            json!({ "k": i })
        };
        calls.push((
            request(second, Some(key)),
            if reused { "reused" } else { "retried" },
        ));
    }
    let outcomes = futures::future::join_all(calls.into_iter().map(|(req, what)| {
        let enqueuer = enqueuer.clone();
        async move { (what, enqueuer.enqueue(req).await.unwrap()) }
    }))
    .await;

    let created = outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Enqueued::Created(_)))
        .count();
    let replayed = outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Enqueued::Replayed(_)))
        .count();
    let conflicts = outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Enqueued::Conflict(_)))
        .count();
    assert_eq!((created, replayed, conflicts), (240, 20, 20));
    for (what, outcome) in &outcomes {
        if *what == "plain" {
            assert!(matches!(outcome, Enqueued::Created(_)), "{outcome:?}");
        }
    }
    // Every key names one row, and a replay answers with that row.
    for (_, outcome) in &outcomes {
        if let Enqueued::Replayed(rec) | Enqueued::Conflict(rec) = outcome {
            let key = rec.idempotency_key.as_deref().unwrap();
            let holder: Uuid = sqlx::query_scalar(
                "SELECT id FROM tasks WHERE requester = 'demo' AND idempotency_key = $1",
            )
            .bind(key)
            .fetch_one(&env.pool)
            .await
            .unwrap();
            assert_eq!(rec.id, holder);
        }
    }
    assert_eq!(count(&env, "SELECT count(*) FROM tasks").await, 240);
    // now() is the transaction's start: fewer distinct creation times than rows means
    // requests shared statements.
    let statements = count(&env, "SELECT count(DISTINCT created_at) FROM tasks").await;
    assert!(statements < 240, "{statements} statements for 240 tasks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_value_postgres_refuses_fails_only_the_request_that_sent_it() {
    let env = TestEnv::new().await;
    // One statement with the bad row fails as a whole ...
    let bad = json!({ "note": "a\u{0}b" });
    let group = [
        new_task(json!({ "n": 1 }), None),
        new_task(bad.clone(), None),
        new_task(json!({ "n": 2 }), Some("k")),
        new_task(json!({ "n": 2 }), Some("k")),
    ];
    let mut conn = env.pool.acquire().await.unwrap();
    assert!(store::insert_many(&mut conn, &group).await.is_err());
    assert_eq!(count(&env, "SELECT count(*) FROM tasks").await, 0);
    // ... and without it, one call gives each task its own outcome, in order: a key sent
    // twice in one statement creates one row.
    let outcomes = store::insert_many(
        &mut conn,
        &[group[0].clone(), group[2].clone(), group[3].clone()],
    )
    .await
    .unwrap()
    .into_iter()
    .map(Result::unwrap)
    .collect::<Vec<_>>();
    assert!(matches!(outcomes[0], Inserted::Created(ref r) if r.id == group[0].id));
    assert!(matches!(outcomes[1], Inserted::Created(ref r) if r.id == group[2].id));
    assert!(matches!(outcomes[2], Inserted::Replayed(ref r) if r.id == group[2].id));

    // Through the enqueuer, requests that share a statement with the bad one still succeed.
    let enqueuer = Enqueuer::new(env.pool.clone(), transport(&env), env.config.task_ttl);
    let mut calls = vec![request(bad, None)];
    calls.extend((0..30).map(|i| request(json!({ "m": i }), None)));
    let outcomes = futures::future::join_all(calls.into_iter().map(|req| {
        let enqueuer = enqueuer.clone();
        async move { enqueuer.enqueue(req).await }
    }))
    .await;
    let err = outcomes[0].as_ref().unwrap_err();
    assert!(
        matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some("22P05")),
        "{err:?}"
    );
    for outcome in &outcomes[1..] {
        assert!(matches!(outcome, Ok(Enqueued::Created(_))), "{outcome:?}");
    }
    assert_eq!(
        count(&env, "SELECT count(*) FROM tasks WHERE params ? 'm'").await,
        30
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_postgres_unreachable_every_request_of_a_group_gets_an_outage() {
    let env = TestEnv::new().await;
    // Nothing listens on port 1: every connection attempt is refused.
    let down = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(500))
        .connect_lazy("postgres://postgres@127.0.0.1:1/none")
        .unwrap();
    let enqueuer = Enqueuer::new(down, transport(&env), env.config.task_ttl);
    let outcomes = futures::future::join_all((0..20).map(|i| {
        let enqueuer = enqueuer.clone();
        async move { enqueuer.enqueue(request(json!({ "n": i }), None)).await }
    }))
    .await;
    for outcome in outcomes {
        let err = outcome.unwrap_err();
        assert!(
            matches!(
                err,
                sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed
            ),
            "{err:?}"
        );
    }
}
