-- Director reports data set (issue 3), loaded by `director.sh` into a freshly migrated
-- database (default `taquilla_bench_director`). Set-based (generate_series), ≈ 1–3 min on 2
-- shared cores:
--   5,000 organizers; 20,000 events (≈ 25 % premium, each with an organizer);
--   1,000,000 director_ledger_entries over the last 730 days: ≈ 85 % assignments
--     (assign_prepaid / assign_loan, tickets 1–500, tickets_equivalent = tickets × 2 on
--     premium events, amount_cents = tickets × price, price 100–100,000 cents) and ≈ 15 %
--     payments per organizer without event (sized so that ≈ 80 % of what is assigned is paid);
--     currency MXN ≈ 95 %, USD otherwise; a unique random task_id each;
--   organizer_balances matching the ledger;
--   200,000 guests (pending 40 %, confirmed 40 %, scanned 20 %);
--   300,000 deliveries (queued 5 %, sent 20 %, delivered 40 %, read 30 %, failed 5 %);
-- then the roll-up tables rebuilt, the three KPI views refreshed and VACUUM ANALYZE
-- (autovacuum is off on the bench server). The ledger's roll-up trigger (migration 6) is
-- off during the bulk insert and `director_rollups_rebuild()` recomputes the roll-ups once
-- at the end (what the migration does on an existing ledger); the trigger's own bulk path
-- is covered by the tests, not timed here. The set-based triggers of migrations 7 and 8
-- (status counts, day totals) stay on: each bulk statement is one aggregated upsert.
-- Ids: org_b00001…, evb_000001…, guests gb_1…; event of guest g = 1 + (g·2654435761
-- mod 20000), so deliveries find their guest's event without a join.
\set ON_ERROR_STOP 1
\timing on
SET work_mem = '64MB';
SET maintenance_work_mem = '256MB';
SELECT setseed(0.42);

ALTER TABLE director_ledger_entries DISABLE TRIGGER director_ledger_rollup;

INSERT INTO organizers (id, name, email, created_at)
SELECT 'org_b' || lpad(g::text, 5, '0'), 'Organizer ' || g, 'org' || g || '@example.test',
       now() - interval '800 days' + random() * interval '60 days'
FROM generate_series(1, 5000) g;

INSERT INTO events (id, organizer_id, name, type, starts_at, created_at)
SELECT 'evb_' || lpad(g::text, 6, '0'),
       'org_b' || lpad((1 + floor(random() * 5000))::int::text, 5, '0'),
       'Event ' || g,
       CASE WHEN random() < 0.25 THEN 'premium' ELSE 'standard' END,
       now() - interval '730 days' + random() * interval '790 days',
       now() - interval '760 days'
FROM generate_series(1, 20000) g;

-- 850,000 assignments: the event picks the organizer and the premium factor.
INSERT INTO director_ledger_entries
    (id, organizer_id, event_id, entry_type, tickets, tickets_equivalent, amount_cents, currency, metadata, task_id, created_at)
SELECT gen_random_uuid(), e.organizer_id, e.id,
       CASE WHEN s.r1 < 0.7 THEN 'assign_prepaid' ELSE 'assign_loan' END,
       s.tickets,
       s.tickets * CASE WHEN e.type = 'premium' THEN 2 ELSE 1 END,
       s.tickets::bigint * s.price,
       CASE WHEN s.r2 < 0.95 THEN 'MXN' ELSE 'USD' END,
       '{}'::jsonb, gen_random_uuid(),
       now() - random() * interval '730 days'
FROM (SELECT 'evb_' || lpad((1 + floor(random() * 20000))::int::text, 6, '0') AS ev,
             (1 + floor(random() * 500))::int AS tickets,
             (100 + floor(random() * 99901))::bigint AS price,
             random() AS r1, random() AS r2
      FROM generate_series(1, 850000)) s
JOIN events e ON e.id = s.ev;

-- 150,000 payments (≈ 30 per organizer), no event. Mean assignment ≈ 250 × 50,050 cents,
-- ≈ 170 per organizer; a payment of 10–100 M cents (mean 55 M) pays back ≈ 80 % overall.
INSERT INTO director_ledger_entries
    (id, organizer_id, event_id, entry_type, tickets, tickets_equivalent, amount_cents, currency, metadata, task_id, created_at)
SELECT gen_random_uuid(),
       'org_b' || lpad((1 + floor(random() * 5000))::int::text, 5, '0'),
       NULL, 'payment', 0, 0,
       (10000000 + floor(random() * 90000001))::bigint,
       CASE WHEN random() < 0.95 THEN 'MXN' ELSE 'USD' END,
       '{}'::jsonb, gen_random_uuid(),
       now() - random() * interval '730 days'
FROM generate_series(1, 150000);

ALTER TABLE director_ledger_entries ENABLE TRIGGER director_ledger_rollup;
SELECT director_rollups_rebuild();

INSERT INTO organizer_balances (organizer_id, currency, tickets, tickets_equivalent, assigned_cents, paid_cents)
SELECT organizer_id, currency, sum(tickets), sum(tickets_equivalent),
       COALESCE(sum(amount_cents) FILTER (WHERE entry_type <> 'payment'), 0),
       COALESCE(sum(amount_cents) FILTER (WHERE entry_type = 'payment'), 0)
FROM director_ledger_entries GROUP BY 1, 2;

INSERT INTO guests (id, event_id, name, email, phone, status, ticket_code, created_at, updated_at)
SELECT 'gb_' || g,
       'evb_' || lpad((1 + (g::bigint * 2654435761) % 20000)::text, 6, '0'),
       'Guest ' || g, 'guest' || g || '@example.test', '+52155' || lpad(g::text, 8, '0'),
       CASE WHEN r < 0.4 THEN 'pending' WHEN r < 0.8 THEN 'confirmed' ELSE 'scanned' END,
       CASE WHEN r >= 0.4 THEN 'QR' || g END,
       ts, ts
FROM (SELECT g, random() AS r, now() - random() * interval '730 days' AS ts
      FROM generate_series(1, 200000) g) s;

INSERT INTO deliveries (id, event_id, guest_id, channel, kind, template, status, provider_message_id,
                        created_at, updated_at, sent_at, delivered_at, read_at, failed_at)
SELECT gen_random_uuid(),
       'evb_' || lpad((1 + (gi::bigint * 2654435761) % 20000)::text, 6, '0'),
       'gb_' || gi,
       CASE WHEN random() < 0.7 THEN 'whatsapp' ELSE 'email' END,
       CASE WHEN random() < 0.6 THEN 'invitation' ELSE 'reminder' END,
       'tpl_default', st,
       CASE WHEN st <> 'queued' THEN 'pm_' || g END,
       ts, ts,
       CASE WHEN st <> 'queued' THEN ts + interval '2 seconds' END,
       CASE WHEN st IN ('delivered', 'read') THEN ts + interval '5 seconds' END,
       CASE WHEN st = 'read' THEN ts + interval '10 minutes' END,
       CASE WHEN st = 'failed' THEN ts + interval '3 seconds' END
FROM (SELECT g, (1 + floor(random() * 200000))::int AS gi,
             CASE WHEN r < 0.05 THEN 'queued' WHEN r < 0.25 THEN 'sent' WHEN r < 0.65 THEN 'delivered'
                  WHEN r < 0.95 THEN 'read' ELSE 'failed' END AS st,
             now() - random() * interval '730 days' AS ts
      FROM (SELECT g, random() AS r FROM generate_series(1, 300000) g) x) s;

REFRESH MATERIALIZED VIEW mv_kpi_tickets_entregados;
REFRESH MATERIALIZED VIEW mv_kpi_deuda_abierta;
REFRESH MATERIALIZED VIEW mv_kpi_top_organizadores;
VACUUM ANALYZE;
