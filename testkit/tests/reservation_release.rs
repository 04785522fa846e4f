//! `reservation_release` (seeds/002, "Timeout de reservas pendientes"): pending
//! reservations past their hold become `expired` and free their units; holds still running,
//! confirmed and cancelled reservations, and units another live reservation holds, stay.

use engine::{KindSpec, TaskStatus};
use jobs::{kinds::reservation_release::ReservationRelease, queues};
use serde_json::json;
use testkit::{fixtures::enqueue, TestApp};

const FIXTURE: &str = "
    INSERT INTO events (id, name) VALUES ('ev_res', 'Reservable');
    INSERT INTO units (id, event_id, label, status) VALUES
      ('u1', 'ev_res', 'A-1', 'reserved'), ('u2', 'ev_res', 'A-2', 'reserved'),
      ('u3', 'ev_res', 'A-3', 'reserved'), ('u4', 'ev_res', 'A-4', 'sold'),
      ('u5', 'ev_res', 'A-5', 'reserved'), ('u6', 'ev_res', 'A-6', 'reserved');
    INSERT INTO reservations (id, event_id, user_id, status, hold_expires_at) VALUES
      ('00000000-0000-0000-0000-000000000001', 'ev_res', 'ana',  'pending',   now() - interval '1 minute'),
      ('00000000-0000-0000-0000-000000000002', 'ev_res', 'beto', 'pending',   now() + interval '10 minutes'),
      ('00000000-0000-0000-0000-000000000003', 'ev_res', 'caro', 'confirmed', now() - interval '1 hour'),
      ('00000000-0000-0000-0000-000000000004', 'ev_res', 'dani', 'pending',   now() - interval '5 minutes'),
      ('00000000-0000-0000-0000-000000000005', 'ev_res', 'eva',  'pending',   now() + interval '5 minutes');
    INSERT INTO reservation_units (reservation_id, unit_id) VALUES
      ('00000000-0000-0000-0000-000000000001', 'u1'),
      ('00000000-0000-0000-0000-000000000001', 'u2'),
      ('00000000-0000-0000-0000-000000000002', 'u3'),
      ('00000000-0000-0000-0000-000000000003', 'u4'),
      -- dani's expired hold and eva's live one both name u5 (eva holds it now)
      ('00000000-0000-0000-0000-000000000004', 'u5'),
      ('00000000-0000-0000-0000-000000000005', 'u5'),
      ('00000000-0000-0000-0000-000000000004', 'u6');";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_reservations_past_their_hold_are_released_and_only_those() {
    let app = TestApp::builder()
        .workers(&[queues::MAINTENANCE])
        .spawn()
        .await;
    sqlx::raw_sql(FIXTURE).execute(&app.pool).await.unwrap();

    let id = enqueue(&app, &KindSpec::of::<ReservationRelease>(), json!({})).await;
    let result = app
        .wait_for(id, TaskStatus::Completed)
        .await
        .result
        .unwrap();
    assert_eq!(result, json!({ "released": 2, "unitsFreed": 3 }));

    let reservations: Vec<(String, String)> =
        sqlx::query_as("SELECT user_id, status FROM reservations ORDER BY user_id")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    let want = [
        ("ana", "expired"),
        ("beto", "pending"),
        ("caro", "confirmed"),
        ("dani", "expired"),
        ("eva", "pending"),
    ];
    assert_eq!(
        reservations,
        want.map(|(a, b)| (a.to_string(), b.to_string())).to_vec()
    );
    let units: Vec<(String, String)> = sqlx::query_as("SELECT id, status FROM units ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    let want = [
        ("u1", "available"),
        ("u2", "available"),
        ("u3", "reserved"),
        ("u4", "sold"),
        ("u5", "reserved"),
        ("u6", "available"),
    ];
    assert_eq!(
        units,
        want.map(|(a, b)| (a.to_string(), b.to_string())).to_vec()
    );

    // Nothing left: the next minute's run releases nothing.
    let id = enqueue(&app, &KindSpec::of::<ReservationRelease>(), json!({})).await;
    let again = app
        .wait_for(id, TaskStatus::Completed)
        .await
        .result
        .unwrap();
    assert_eq!(again, json!({ "released": 0, "unitsFreed": 0 }));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_holds_than_a_batch_are_all_released() {
    let app = TestApp::builder()
        .workers(&[queues::MAINTENANCE])
        .spawn()
        .await;
    let n = 2 * jobs::kinds::reservation_release::BATCH + 7;
    sqlx::query("INSERT INTO events (id, name) VALUES ('ev_res', 'Reservable'); ")
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query(
        "WITH u AS (INSERT INTO units (id, event_id, label, status) \
                    SELECT 'u' || i, 'ev_res', 'S-' || i, 'reserved' FROM generate_series(1, $1) i \
                    RETURNING id), \
              r AS (INSERT INTO reservations (id, event_id, user_id, hold_expires_at) \
                    SELECT md5(id)::uuid, 'ev_res', id, now() - interval '1 second' FROM u \
                    RETURNING id, user_id) \
         INSERT INTO reservation_units (reservation_id, unit_id) SELECT id, user_id FROM r",
    )
    .bind(n)
    .execute(&app.pool)
    .await
    .unwrap();
    let id = enqueue(&app, &KindSpec::of::<ReservationRelease>(), json!({})).await;
    let result = app
        .wait_for(id, TaskStatus::Completed)
        .await
        .result
        .unwrap();
    assert_eq!(result, json!({ "released": n, "unitsFreed": n }));
    app.stop().await;
}
