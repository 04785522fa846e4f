#!/usr/bin/env bash
# Director reports (issue 3) on a large data set: cached and uncached latency of every report
# route, EXPLAIN (ANALYZE, BUFFERS) of the slow queries, and the kpi_refresh duration.
#
#   scripts/bench/director.sh            # fresh DB + director-data.sql, then everything
#   SKIP_DATA=1 scripts/bench/director.sh   # reuse the loaded taquilla_bench_director
#
# Database `taquilla_bench_director` (BENCH_DB), Redis prefix `benchdir` (its keys deleted
# per run), api on 127.0.0.1:18481 (BENCH_PORT), load to 127.0.0.1 only, every load bounded
# in time (wrk -d15s; uncached series ≤ UNCACHED_N requests and ≤ UNCACHED_MAX_S seconds).
set -euo pipefail
export BENCH_DB=${BENCH_DB:-taquilla_bench_director}
export BENCH_PORT=${BENCH_PORT:-18481}
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export REDIS_PREFIX=benchdir
CONNS=${CONNS:-16}
DURATION=${DURATION:-15s}
UNCACHED_N=${UNCACHED_N:-200}
UNCACHED_MAX_S=${UNCACHED_MAX_S:-60}
need psql redis-cli python3 curl wrk
check_binaries

OUT="$LOG_DIR/director-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
machine_info | tee "$OUT/machine.txt"
{
  echo "--- top at start (other load on the 2 shared cores)"
  top -bn1 -w 200 | sed -n 1,15p
} | tee -a "$OUT/machine.txt"

reset_redis_dir() {
  rcli --scan --pattern 'benchdir*' | xargs -r -n 500 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" DEL >/dev/null
}

if [ "${SKIP_DATA:-0}" != 1 ]; then
  say "fresh $BENCH_DB + director-data.sql"
  reset_db
  t0=$(date +%s.%N)
  psql_bench -f "$BENCH_DIR/director-data.sql" >"$OUT/data.log" 2>&1 || die "data load failed (see $OUT/data.log)"
  t1=$(date +%s.%N)
  printf 'data generation wall: %.1f s (per statement: %s)\n' "$(echo "$t1 - $t0" | bc)" "$OUT/data.log" | tee "$OUT/data-time.txt"
fi
psql_bench -c "SELECT (SELECT count(*) FROM organizers) AS organizers, (SELECT count(*) FROM events) AS events,
  (SELECT count(*) FROM director_ledger_entries) AS ledger, (SELECT count(*) FROM guests) AS guests,
  (SELECT count(*) FROM deliveries) AS deliveries,
  (SELECT count(*) FROM mv_kpi_tickets_entregados) AS mv_tickets, (SELECT count(*) FROM mv_kpi_deuda_abierta) AS mv_debt,
  (SELECT count(*) FROM mv_kpi_top_organizadores) AS mv_top,
  (SELECT count(*) FROM director_kpi_org_total) AS org_total, (SELECT count(*) FROM director_kpi_org_day) AS org_day,
  (SELECT count(*) FROM director_kpi_event_total) AS event_total, (SELECT count(*) FROM director_kpi_event_day) AS event_day,
  (SELECT count(*) FROM director_debt_day) AS debt_day,
  (SELECT count(*) FROM director_status_day) AS status_day, (SELECT count(*) FROM director_kpi_day) AS kpi_day,
  pg_size_pretty(pg_database_size(current_database())) AS db_size" | tee "$OUT/sizes.txt"

reset_redis_dir
start_api REDIS_PREFIX=benchdir API_TOKENS=bench-token-1:bench RUST_LOG=warn
AUTH="Authorization: Bearer $BENCH_TOKEN"

MONTH_FROM=$(date -u -d "$(date -u +%Y-%m-01) -2 month" +%Y-%m-%d)
MONTH_TO=$(date -u -d "$MONTH_FROM +1 month -1 day" +%Y-%m-%d)
ORG=org_b00042
ROUTES=(
  "/director/reports/overview"
  "/director/reports/top-organizers?sort=tickets&pageSize=20"
  "/director/reports/debt-aging"
  "/director/reports/tickets-usage?eventType=premium&pageSize=20"
  "/director/overview"
  "/director/reports/overview?from=$MONTH_FROM&to=$MONTH_TO"
  "/director/organizers/$ORG/ledger"
)

say "cached: wrk -t2 -c$CONNS -d$DURATION per route (same URL, cache warm)"
{
  printf '%-70s %6s %10s %8s %8s %8s  %s\n' route first_ms req_per_s p50 p99 max x-cache
  for r in "${ROUTES[@]}"; do
    first=$(curl -sS -o /dev/null -w '%{time_total}' -H "$AUTH" "$API_URL$r")
    tag=$(curl -sS -D - -o /dev/null -H "$AUTH" "$API_URL$r" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-cache" {print $2}')
    wrk -t2 -c"$CONNS" -d"$DURATION" --latency -H "$AUTH" "$API_URL$r" >"$OUT/wrk-$(echo "$r" | tr '/?&=' '____').txt" 2>&1
    f="$OUT/wrk-$(echo "$r" | tr '/?&=' '____').txt"
    rps=$(awk '/^Requests\/sec/ {print $2}' "$f")
    p50=$(awk '$1=="50%" {print $2}' "$f")
    p99=$(awk '$1=="99%" {print $2}' "$f")
    max=$(awk '$1=="Latency" {print $4}' "$f")
    non2xx=$(awk '/Non-2xx/ {print "non2xx=" $NF}' "$f")
    printf '%-70s %6.1f %10s %8s %8s %8s  %s %s\n' "$r" "$(echo "$first * 1000" | bc)" "$rps" "$p50" "$p99" "$max" "${tag:--}" "$non2xx"
  done
} | tee "$OUT/cached.txt"

say "uncached: sequential requests, a distinct filter set each (<= $UNCACHED_N, <= ${UNCACHED_MAX_S}s per route)"
UNCACHED=(
  "/director/reports/overview?pageSize={size}"
  "/director/reports/overview?from={frm}&to={to}"
  "/director/reports/top-organizers?sort=tickets&pageSize={size}"
  "/director/reports/top-organizers?sort=tickets&pageSize=20&from={frm}&to={to}"
  "/director/reports/tickets-usage?eventType=premium&pageSize={size}"
  "/director/reports/tickets-usage?eventType=premium&pageSize=20&from={frm}&to={to}"
  "/director/reports/overview?from={yfrm}&to={to}"
  "/director/reports/top-organizers?sort=tickets&pageSize=20&from={yfrm}&to={to}"
  "/director/reports/tickets-usage?eventType=premium&pageSize=20&from={yfrm}&to={to}"
  "/director/reports/debt-aging?pageSize={size}"
  "/director/reports/debt-aging?organizerId={org}"
  "/director/overview?pageSize={size}"
  "/director/organizers/{org}/ledger"
)
{
  for t in "${UNCACHED[@]}"; do
    printf '%-78s ' "$t"
    python3 "$BENCH_DIR/director-uncached.py" "$API_URL" "$BENCH_TOKEN" "$t" "$UNCACHED_N" "$UNCACHED_MAX_S"
  done
} | tee "$OUT/uncached.txt"

say "EXPLAIN (ANALYZE, BUFFERS) of the report queries (concrete parameters, currency MXN)"
TODAY=$(date -u +%Y-%m-%d)
W_FROM=$(date -u -d "$TODAY -45 days" +%Y-%m-%d)
W_TO=$(date -u -d "$TODAY -16 days" +%Y-%m-%d)
Y_FROM=$(date -u -d "$W_TO -364 days" +%Y-%m-%d)
# The SQL that jobs/src/domain/reports.rs generates for these filter sets (only the filters
# present enter the text); it reads the roll-up tables of migration 6.
psql_bench >"$OUT/explain.txt" 2>&1 <<SQL
\\echo === debt-aging, all organizers, as of today (director_debt_day)
EXPLAIN (ANALYZE, BUFFERS)
SELECT CASE WHEN age <= 30 THEN '0-30' WHEN age <= 60 THEN '31-60' WHEN age <= 90 THEN '61-90' ELSE '>90' END AS bucket,
       sum(unpaid_cents)::bigint AS amount, sum(unpaid_count)::bigint AS n
 FROM (SELECT '$TODAY'::date - day AS age, unpaid_cents, unpaid_count FROM director_debt_day
       WHERE currency = 'MXN' AND day <= '$TODAY'::date AND unpaid_count <> 0) aged GROUP BY 1;

\\echo === debt-aging, one organizer (FIFO over its ledger)
EXPLAIN (ANALYZE, BUFFERS)
SELECT CASE WHEN age <= 30 THEN '0-30' WHEN age <= 60 THEN '31-60' WHEN age <= 90 THEN '61-90' ELSE '>90' END AS bucket,
       sum(unpaid_cents)::bigint AS amount, sum(unpaid_count)::bigint AS n
 FROM (WITH a AS (SELECT created_at, amount_cents, sum(amount_cents) OVER (ORDER BY created_at, id) AS cum
                  FROM director_ledger_entries WHERE organizer_id = '$ORG' AND currency = 'MXN'::char(3) AND entry_type <> 'payment'),
            p AS (SELECT COALESCE(sum(amount_cents), 0) AS paid FROM director_ledger_entries
                  WHERE organizer_id = '$ORG' AND currency = 'MXN'::char(3) AND entry_type = 'payment'),
            r AS (SELECT (a.created_at AT TIME ZONE 'UTC')::date AS day, LEAST(a.amount_cents, GREATEST(0, a.cum - p.paid)) AS unpaid
                  FROM a CROSS JOIN p)
       SELECT '$TODAY'::date - day AS age, unpaid AS unpaid_cents, 1 AS unpaid_count FROM r
       WHERE unpaid > 0 AND day <= '$TODAY'::date) aged GROUP BY 1;

\\echo === overview: per-organizer sums, no filter (director_kpi_org_total)
EXPLAIN (ANALYZE, BUFFERS)
SELECT COALESCE(sum(te), 0)::bigint AS te, COALESCE(sum(assigned), 0)::bigint AS assigned,
       COALESCE(sum(paid), 0)::bigint AS paid, count(*)::bigint AS active
 FROM (SELECT organizer_id, sum(tickets_equivalent) AS te, sum(assigned_cents) AS assigned, sum(paid_cents) AS paid
       FROM director_kpi_org_total WHERE currency = 'MXN' GROUP BY organizer_id) per_organizer;

\\echo === overview: per-organizer sums, 30-day window (director_kpi_org_day; the dated overview before migration 8)
EXPLAIN (ANALYZE, BUFFERS)
SELECT COALESCE(sum(te), 0)::bigint AS te, COALESCE(sum(assigned), 0)::bigint AS assigned,
       COALESCE(sum(paid), 0)::bigint AS paid, count(*)::bigint AS active
 FROM (SELECT organizer_id, sum(tickets_equivalent) AS te, sum(assigned_cents) AS assigned, sum(paid_cents) AS paid
       FROM director_kpi_org_day WHERE currency = 'MXN' AND day >= '$W_FROM' AND day <= '$W_TO' GROUP BY organizer_id) per_organizer;

\\echo === overview: totals and active organizers, 30-day window (director_kpi_day, migration 8)
EXPLAIN (ANALYZE, BUFFERS)
SELECT COALESCE(sum(te), 0)::bigint AS te, COALESCE(sum(assigned), 0)::bigint AS assigned,
       COALESCE(sum(paid), 0)::bigint AS paid, COALESCE(sum(bit_count(active)), 0)::bigint AS active
 FROM (SELECT sum(tickets_equivalent) AS te, sum(assigned_cents) AS assigned,
              sum(paid_cents) AS paid, bit_or(active) AS active
       FROM director_kpi_day WHERE currency = 'MXN' AND day >= '$W_FROM' AND day <= '$W_TO' GROUP BY chunk, stripe) per_bitmap;

\\echo === overview: totals and active organizers, one-year window (director_kpi_day)
EXPLAIN (ANALYZE, BUFFERS)
SELECT COALESCE(sum(te), 0)::bigint AS te, COALESCE(sum(assigned), 0)::bigint AS assigned,
       COALESCE(sum(paid), 0)::bigint AS paid, COALESCE(sum(bit_count(active)), 0)::bigint AS active
 FROM (SELECT sum(tickets_equivalent) AS te, sum(assigned_cents) AS assigned,
              sum(paid_cents) AS paid, bit_or(active) AS active
       FROM director_kpi_day WHERE currency = 'MXN' AND day >= '$Y_FROM' AND day <= '$W_TO' GROUP BY chunk, stripe) per_bitmap;

\\echo === overview: deliveries breakdown, no filter (director_status_day, migration 7)
EXPLAIN (ANALYZE, BUFFERS)
SELECT status, sum(n)::bigint AS n FROM director_status_day
 WHERE source = 'deliveries' AND status = ANY('{queued,sent,delivered,read,failed}')
 GROUP BY status HAVING sum(n) > 0 ORDER BY status;

\\echo === overview: deliveries breakdown, 30-day window (director_status_day)
EXPLAIN (ANALYZE, BUFFERS)
SELECT status, sum(n)::bigint AS n FROM director_status_day
 WHERE source = 'deliveries' AND status = ANY('{queued,sent,delivered,read,failed}')
   AND day >= '$W_FROM' AND day <= '$W_TO'
 GROUP BY status HAVING sum(n) > 0 ORDER BY status;

\\echo === overview: deliveries breakdown, one event (counts its rows)
EXPLAIN (ANALYZE, BUFFERS)
SELECT x.status, count(*)::bigint AS n FROM deliveries x WHERE true AND x.event_id = 'evb_000042'
 GROUP BY x.status ORDER BY x.status;

\\echo === top-organizers, sort=tickets, pageSize=20, no dates (director_kpi_org_total)
EXPLAIN (ANALYZE, BUFFERS)
WITH ranked AS (
     SELECT organizer_id, sum(tickets_equivalent)::bigint AS tickets_equivalent,
            sum(assigned_cents)::bigint AS assigned_cents, max(last_activity_at) AS last_activity_at
     FROM (SELECT organizer_id, tickets_equivalent, assigned_cents, last_at AS last_activity_at
           FROM director_kpi_org_total WHERE currency = 'MXN') s GROUP BY organizer_id
     ORDER BY tickets_equivalent DESC, organizer_id LIMIT 9223372036854775807)
 SELECT c.total, p.* FROM (SELECT count(*) AS total FROM ranked) c
 LEFT JOIN LATERAL (SELECT * FROM ranked ORDER BY tickets_equivalent DESC, organizer_id LIMIT 20 OFFSET 0) p ON true;

\\echo === top-organizers, sort=tickets, pageSize=20, 30-day window (director_kpi_org_day)
EXPLAIN (ANALYZE, BUFFERS)
WITH ranked AS (
     SELECT organizer_id, sum(tickets_equivalent)::bigint AS tickets_equivalent,
            sum(assigned_cents)::bigint AS assigned_cents, max(last_activity_at) AS last_activity_at
     FROM (SELECT organizer_id, tickets_equivalent, assigned_cents, last_at AS last_activity_at
           FROM director_kpi_org_day WHERE currency = 'MXN' AND day >= '$W_FROM' AND day <= '$W_TO') s GROUP BY organizer_id
     ORDER BY tickets_equivalent DESC, organizer_id LIMIT 9223372036854775807)
 SELECT c.total, p.* FROM (SELECT count(*) AS total FROM ranked) c
 LEFT JOIN LATERAL (SELECT * FROM ranked ORDER BY tickets_equivalent DESC, organizer_id LIMIT 20 OFFSET 0) p ON true;

\\echo === tickets-usage, eventType=premium, pageSize=20 (director_kpi_event_total)
EXPLAIN (ANALYZE, BUFFERS)
WITH usage AS (
     SELECT t.event_id, e.name AS event_name, e.type AS event_type,
            sum(t.tickets)::bigint AS tickets_assigned, sum(t.tickets_equivalent)::bigint AS tickets_equivalent,
            sum(t.assigned_cents)::bigint AS assigned_cents, max(t.last_at) AS last_movement_at
     FROM director_kpi_event_total t JOIN events e ON e.id = t.event_id
     WHERE t.currency = 'MXN' AND e.type = 'premium'
     GROUP BY t.event_id, e.name, e.type
     ORDER BY tickets_assigned DESC, t.event_id LIMIT 9223372036854775807)
 SELECT c.total, p.* FROM (SELECT count(*) AS total FROM usage) c
 LEFT JOIN LATERAL (SELECT * FROM usage ORDER BY tickets_assigned DESC, event_id LIMIT 20 OFFSET 0) p ON true;

\\echo === organizer ledger page (api/src/routes/reports.rs ledger)
EXPLAIN (ANALYZE, BUFFERS)
SELECT id, event_id, entry_type, tickets, tickets_equivalent, amount_cents, currency::text AS currency,
       metadata, task_id, created_at, count(*) OVER () AS total
 FROM director_ledger_entries WHERE organizer_id = '$ORG'
 ORDER BY created_at DESC, id DESC LIMIT 50 OFFSET 0;
SQL
grep -E '^===|Execution Time' "$OUT/explain.txt" | paste - - | tee "$OUT/explain-summary.txt"

stop_started "$API_PID"

say "kpi_refresh: one release worker (WORKER_QUEUES=maintenance), then worker run-once kpi-refresh"
start_worker REDIS_PREFIX=benchdir WORKER_QUEUES=maintenance
sleep 2
t0=$(date +%s.%N)
REDIS_PREFIX=benchdir timeout 900 "$BIN_DIR/worker" run-once kpi-refresh --timeout 600 >"$OUT/kpi-refresh.json" 2>"$OUT/kpi-refresh.err" || say "run-once exited non-zero (see $OUT/kpi-refresh.err)"
t1=$(date +%s.%N)
printf 'kpi-refresh run-once wall: %.2f s\n' "$(echo "$t1 - $t0" | bc)" | tee "$OUT/kpi-refresh.txt"
python3 - "$OUT/kpi-refresh.json" <<'PY' | tee -a "$OUT/kpi-refresh.txt"
import json, sys
raw = open(sys.argv[1]).read()
try:
    t = json.loads(raw[raw.index("{"):])
except Exception as e:
    print("could not parse run-once output:", e); sys.exit(0)
res = t.get("result") or {}
for v in res.get("views", []):
    print("  %-28s %7d ms" % (v["view"], v["ms"]))
print("  status=%s prewarmed=%s" % (t.get("status"), res.get("prewarmed")))
PY
psql_bench -Atc "SELECT 'tasks: ' || string_agg(kind || '/' || status || ' ' || round(extract(epoch FROM finished_at - started_at)::numeric, 2) || 's run, '
  || round(extract(epoch FROM started_at - created_at)::numeric, 2) || 's wait', '; ') FROM tasks WHERE kind = 'kpi_refresh'" | tee -a "$OUT/kpi-refresh.txt"
{
  echo "--- top at end"
  top -bn1 -w 200 | sed -n 1,15p
} | tee -a "$OUT/machine.txt"
say "output in $OUT"
