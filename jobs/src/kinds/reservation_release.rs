//! `reservation_release`: the reservation timeout of seeds/002 ("Timeout de reservas
//! pendientes"). Pending reservations whose hold expired become `expired` and their units
//! `available` again, 500 reservations per transaction. Meant to run every minute; params
//! are ignored (`{}` will do).

use std::time::Duration;

use serde_json::json;

use engine::{retry::Backoff, Done, JobError, Kind};

use crate::{queues, Ctx, Services};

pub const NAME: &str = "reservation_release";

/// Reservations released per transaction.
pub const BATCH: i64 = 500;

/// One batch: the due reservations (rows another run holds are skipped), their release, and
/// their units freed. A unit is freed only while it is `reserved` and no other live
/// reservation holds it, so a sold seat or one held again is never made available.
const RELEASE: &str = "
    WITH due AS (
        SELECT id FROM reservations
        WHERE status = 'pending' AND hold_expires_at <= now()
        ORDER BY hold_expires_at LIMIT $1
        FOR UPDATE SKIP LOCKED),
    released AS (
        UPDATE reservations r SET status = 'expired', updated_at = now()
        FROM due WHERE r.id = due.id
        RETURNING r.id),
    freed AS (
        UPDATE units u SET status = 'available', updated_at = now()
        FROM reservation_units ru JOIN released ON released.id = ru.reservation_id
        WHERE u.id = ru.unit_id AND u.status = 'reserved'
          AND NOT EXISTS (
              SELECT 1 FROM reservation_units other
              JOIN reservations live ON live.id = other.reservation_id
              WHERE other.unit_id = u.id AND other.reservation_id <> ru.reservation_id
                AND other.reservation_id NOT IN (SELECT id FROM due)
                AND live.status IN ('pending', 'confirmed'))
        RETURNING u.id)
    SELECT (SELECT count(*) FROM released) AS released, (SELECT count(*) FROM freed) AS freed";

/// The `reservation_release` kind.
pub struct ReservationRelease;

impl Kind for ReservationRelease {
    type State = Services;
    const NAME: &'static str = NAME;
    const QUEUE: &'static str = queues::MAINTENANCE;
    const MAX_ATTEMPTS: i32 = 3;
    const TIMEOUT: Duration = Duration::from_secs(5 * 60);
    const BACKOFF: Backoff = Backoff::new(Duration::from_secs(5), Duration::from_secs(60));

    async fn run(ctx: Ctx) -> Result<Done, JobError> {
        let mut released = 0i64;
        let mut freed = 0i64;
        loop {
            ctx.check_cancel().await?;
            let mut tx = ctx.pool().begin().await?;
            let (r, f): (i64, i64) = sqlx::query_as(RELEASE)
                .bind(BATCH)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            released += r;
            freed += f;
            if r < BATCH {
                break;
            }
        }
        if released > 0 {
            tracing::info!(
                released,
                units_freed = freed,
                "expired reservation holds released"
            );
        }
        Ok(Done::Result(
            json!({ "released": released, "unitsFreed": freed }),
        ))
    }
}
