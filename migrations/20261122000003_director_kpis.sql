-- KPI views of the director dashboard (seeds/000, "KPIs y vistas materializadas"), grained
-- by organizer, event, currency and day so date-filtered reports read them instead of the
-- raw ledger. Each has the unique index REFRESH MATERIALIZED VIEW CONCURRENTLY requires;
-- `scripts/refresh_kpis.sql` and the `kpi_refresh` job refresh them.

-- Tickets delivered (assignments) per organizer, event, currency and day.
CREATE MATERIALIZED VIEW mv_kpi_tickets_entregados AS
SELECT organizer_id,
       COALESCE(event_id, '') AS event_id,
       currency::text AS currency,
       (created_at AT TIME ZONE 'UTC')::date AS day,
       sum(tickets)::bigint AS tickets,
       sum(tickets_equivalent)::bigint AS tickets_equivalent,
       sum(amount_cents)::bigint AS assigned_cents,
       count(*)::bigint AS entries,
       max(created_at) AS last_at
FROM director_ledger_entries
WHERE entry_type <> 'payment'
GROUP BY 1, 2, 3, 4;
CREATE UNIQUE INDEX mv_kpi_tickets_entregados_key ON mv_kpi_tickets_entregados (organizer_id, event_id, currency, day);
CREATE INDEX mv_kpi_tickets_entregados_day ON mv_kpi_tickets_entregados (day);

-- Assigned and paid per organizer, currency and day: open debt = Σ assigned − Σ paid.
CREATE MATERIALIZED VIEW mv_kpi_deuda_abierta AS
SELECT organizer_id,
       currency::text AS currency,
       (created_at AT TIME ZONE 'UTC')::date AS day,
       COALESCE(sum(amount_cents) FILTER (WHERE entry_type <> 'payment'), 0)::bigint AS assigned_cents,
       COALESCE(sum(amount_cents) FILTER (WHERE entry_type = 'payment'), 0)::bigint AS paid_cents,
       max(created_at) AS last_at
FROM director_ledger_entries
GROUP BY 1, 2, 3;
CREATE UNIQUE INDEX mv_kpi_deuda_abierta_key ON mv_kpi_deuda_abierta (organizer_id, currency, day);
CREATE INDEX mv_kpi_deuda_abierta_day ON mv_kpi_deuda_abierta (day);

-- Ranking material: equivalents, value and last activity per organizer, currency and day.
CREATE MATERIALIZED VIEW mv_kpi_top_organizadores AS
SELECT organizer_id,
       currency::text AS currency,
       (created_at AT TIME ZONE 'UTC')::date AS day,
       COALESCE(sum(tickets_equivalent) FILTER (WHERE entry_type <> 'payment'), 0)::bigint AS tickets_equivalent,
       COALESCE(sum(amount_cents) FILTER (WHERE entry_type <> 'payment'), 0)::bigint AS assigned_cents,
       max(created_at) AS last_activity_at
FROM director_ledger_entries
GROUP BY 1, 2, 3;
CREATE UNIQUE INDEX mv_kpi_top_organizadores_key ON mv_kpi_top_organizadores (organizer_id, currency, day);
CREATE INDEX mv_kpi_top_organizadores_day ON mv_kpi_top_organizadores (day);

-- Debt aging walks assignments oldest first per organizer and currency.
CREATE INDEX director_ledger_entries_fifo_idx ON director_ledger_entries (organizer_id, currency, created_at, id)
    WHERE entry_type <> 'payment';
CREATE INDEX events_type_idx ON events (type);
