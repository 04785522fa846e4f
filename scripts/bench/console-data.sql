-- 1,000,000 tasks over the last 7 days for scripts/bench/console.sh: five kinds on five
-- queues; 95 % completed, 2 % failed, 1 % dead, 1 % pending, 0.5 % running, 0.5 % cancelled;
-- params with one of 1,000 organizers. Ids are UUIDv7 built from created_at (as the api
-- makes them), so newest-first order by id is creation order.
INSERT INTO tasks (id, kind, queue, status, params, result, error, errors, attempts, max_attempts,
                   progress, requester, run_at, created_at, updated_at, started_at, finished_at,
                   expires_at, worker)
SELECT
    (lpad(to_hex((extract(epoch FROM ts) * 1000)::bigint), 12, '0') || '7'
        || substr(md5(g::text), 1, 3) || '8' || substr(md5(g::text), 4, 15))::uuid,
    k.kind, k.queue, st.status,
    jsonb_build_object('organizerId', 'org_' || lpad((g % 1000)::text, 4, '0'),
                       'eventId', 'ev_' || (g % 5000), 'tickets', g % 50),
    CASE WHEN st.status = 'completed' THEN jsonb_build_object('entryId', md5(g::text)) END,
    CASE WHEN st.status IN ('failed', 'dead')
         THEN jsonb_build_object('code', 'upstream_down', 'message', 'the upstream answered 503') END,
    CASE WHEN st.status IN ('failed', 'dead')
         THEN jsonb_build_array(jsonb_build_object('attempt', 1, 'code', 'upstream_down',
              'message', 'the upstream answered 503', 'at', ts + interval '1 second'))
         ELSE '[]'::jsonb END,
    CASE WHEN st.status IN ('pending') THEN 0 ELSE 1 END,
    3,
    CASE WHEN st.status = 'completed' THEN 100 ELSE 0 END,
    'bench',
    ts, ts, ts + interval '2 seconds',
    CASE WHEN st.status <> 'pending' THEN ts + interval '1 second' END,
    CASE WHEN st.status IN ('completed', 'failed', 'dead', 'cancelled') THEN ts + interval '2 seconds' END,
    ts + interval '30 days',
    CASE WHEN st.status <> 'pending' THEN 'bench-worker-' || (g % 4) END
FROM generate_series(1, 1000000) AS g
CROSS JOIN LATERAL (SELECT now() - interval '7 days' + g * interval '604 ms' AS ts) AS t
CROSS JOIN LATERAL (
    SELECT (ARRAY['assignment', 'report_export', 'delivery', 'payment_webhook', 'kpi_refresh'])[g % 5 + 1] AS kind,
           (ARRAY['assignments', 'reports', 'deliveries', 'webhooks', 'maintenance'])[g % 5 + 1] AS queue
) AS k
CROSS JOIN LATERAL (
    SELECT CASE WHEN g % 1000 < 950 THEN 'completed'
                WHEN g % 1000 < 970 THEN 'failed'
                WHEN g % 1000 < 980 THEN 'dead'
                WHEN g % 1000 < 990 THEN 'pending'
                WHEN g % 1000 < 995 THEN 'running'
                ELSE 'cancelled' END AS status
) AS st;

-- Running tasks hold a lease (the relay would take them back otherwise).
UPDATE tasks SET lease_expires_at = now() + interval '1 day' WHERE status = 'running';
VACUUM ANALYZE tasks;
