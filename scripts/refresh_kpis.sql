-- Refreshes the director KPI views by hand (seeds/000): psql "$DATABASE_URL" -f scripts/refresh_kpis.sql
-- CONCURRENTLY keeps the views readable during the refresh. The views are per-organizer (and
-- per-event) snapshots of the roll-up tables that the ledger trigger keeps current (migration
-- 6), so this diffs thousands of rows, not the ledger; the director reports read the roll-ups
-- directly and do not wait for it. The `kpi_refresh` job does the same (and pre-warms the
-- report caches); prefer POST /director/kpis/refresh or `worker run-once kpi-refresh` so the
-- refresh is a task you can follow.
REFRESH MATERIALIZED VIEW CONCURRENTLY mv_kpi_tickets_entregados;
REFRESH MATERIALIZED VIEW CONCURRENTLY mv_kpi_deuda_abierta;
REFRESH MATERIALIZED VIEW CONCURRENTLY mv_kpi_top_organizadores;
