//! The product's schema: the migrations of `migrations/` (the engine's `tasks` table among
//! them), embedded in every binary so api and worker can apply them at start-up. sqlx holds
//! a Postgres advisory lock while migrating, so replicas that start together apply each
//! migration once. Pools come from [`engine::db`].

use sqlx::PgPool;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}
