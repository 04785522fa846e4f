//! At most `REPORT_EXPORTS_PER_ORGANIZER` exports of one organizer at once, across every
//! replica (seeds/000: `jobOptions.limiter`). A slot is a Postgres session advisory lock held
//! by the export's own connection (the one that streams its rows): it needs no lease or
//! clean-up, because a crashed worker's connection closes and Postgres frees the lock.
//! Exports without an organizer filter share one "all organizers" bucket.

use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

/// A held slot and the dedicated connection that holds it. Dropping it closes the
/// connection, which frees the slot.
pub struct Slot {
    pub conn: PgConnection,
    pub index: u32,
}

impl Slot {
    /// Frees the slot at once (a clean close; dropping also works, a moment later).
    pub async fn release(self) {
        let _ = self.conn.close().await;
    }
}

/// The bucket an export counts against.
pub fn bucket(organizer: Option<&str>) -> String {
    match organizer {
        Some(id) => format!("organizer:{id}"),
        None => "all-organizers".into(),
    }
}

/// Tries each of the `limit` slots of `bucket`; `None` when all are taken.
pub async fn try_acquire(
    pool: &PgPool,
    bucket: &str,
    limit: u32,
) -> Result<Option<Slot>, sqlx::Error> {
    // A connection of its own, outside the pool: a pooled connection would go back to the
    // pool still holding the lock if the export were aborted.
    let mut conn = pool.connect_options().as_ref().clone().connect().await?;
    for index in 0..limit {
        // The schema is part of the key so that databases shared by several deployments (or
        // by parallel tests) do not share slots.
        let got: bool = sqlx::query_scalar(
            "SELECT pg_try_advisory_lock(hashtext(current_schema() || ':report_export:' || $1), $2)",
        )
        .bind(bucket)
        .bind(index as i32)
        .fetch_one(&mut conn)
        .await?;
        if got {
            return Ok(Some(Slot { conn, index }));
        }
    }
    let _ = conn.close().await;
    Ok(None)
}
