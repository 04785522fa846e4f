#!/usr/bin/env bash
# The operator console (issue 14) with 1,000,000 tasks: latency (p50/p99) of every page and
# live fragment under wrk, and what the live overview costs Postgres per open console.
#
#   scripts/bench/console.sh              # fresh DB, 1M tasks (scripts/bench/console-data.sql)
#   SKIP_DATA=1 scripts/bench/console.sh  # reuse the loaded taquilla_bench_console
#
# Database `taquilla_bench_console` (BENCH_DB), Redis prefix `benchconsole`, api (release) on
# 127.0.0.1:18491 (BENCH_PORT) with an admin token; load to 127.0.0.1 only, each page for
# PAGE_SECONDS (default 8) with CONNS (default 2) connections. Needs only the api binary
# (it migrates at start): TAQUILLA_BIN_DIR or $HOME/.cache/taquilla/target/release.
#
# Overview cost: one simulated console polls /console/live/overview every 5 s (what the
# page does) for POLL_SECONDS (default 60); the CPU time of the Postgres backends serving
# this database (from /proc, by pid from pg_stat_activity) over that window, as % of a core.
set -euo pipefail
export BENCH_DB=${BENCH_DB:-taquilla_bench_console}
export BENCH_PORT=${BENCH_PORT:-18491}
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export REDIS_PREFIX=benchconsole
PAGE_SECONDS=${PAGE_SECONDS:-8}
CONNS=${CONNS:-2}
POLL_SECONDS=${POLL_SECONDS:-60}
need psql redis-cli curl wrk python3
[ -x "$BIN_DIR/api" ] || die "release api not found in $BIN_DIR (cargo build --release -p taquilla-api)"
trap bench_cleanup EXIT

OUT="$LOG_DIR/console-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
machine_info 2>/dev/null | grep -v '^binaries' | tee "$OUT/machine.txt" || true

rcli --scan --pattern 'benchconsole*' | xargs -r -n 500 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" DEL >/dev/null
if [ "${SKIP_DATA:-0}" != 1 ]; then
  psql_admin -c "DROP DATABASE IF EXISTS $BENCH_DB WITH (FORCE)" >/dev/null
  psql_admin -c "CREATE DATABASE $BENCH_DB" >/dev/null
fi
ADMIN_TOKEN=bench-console-admin-token
# The api migrates at start; then the data (no worker runs: the numbers are the console's).
start_api REDIS_PREFIX=benchconsole API_TOKENS="$ADMIN_TOKEN:ops:admin" RUST_LOG=warn
if [ "${SKIP_DATA:-0}" != 1 ]; then
  say "loading 1,000,000 tasks"
  t0=$(date +%s)
  psql_bench -f "$BENCH_DIR/console-data.sql" >"$OUT/data.log" 2>&1 || die "data load failed (see $OUT/data.log)"
  echo "data load: $(($(date +%s) - t0)) s" | tee "$OUT/data-time.txt"
fi
psql_bench -Atc "SELECT 'tasks: ' || count(*) || ', table ' || pg_size_pretty(pg_total_relation_size('tasks')) FROM tasks" | tee "$OUT/sizes.txt"

# A session, as the login form gives one.
COOKIE=$(curl -sS -o /dev/null -D - -X POST "$API_URL/console/login" -H 'Sec-Fetch-Site: same-origin' \
  --data-urlencode "token=$ADMIN_TOKEN" | tr -d '\r' | awk -F'[ ;]' 'tolower($1) == "set-cookie:" {print $2}')
[ -n "$COOKIE" ] || die "login gave no session cookie"

DEAD_ID=$(psql_bench -Atc "SELECT id FROM tasks WHERE status = 'dead' ORDER BY id DESC LIMIT 1")
MID_ID=$(psql_bench -Atc "SELECT id FROM tasks ORDER BY id OFFSET 500000 LIMIT 1")
pages=(
  "overview|/console"
  "overview-live|/console/live/overview"
  "tasks|/console/tasks"
  "tasks-page-500k-deep|/console/tasks?before=$MID_ID"
  "tasks-dead|/console/tasks?status=dead"
  "tasks-queue-failed|/console/tasks?queue=reports&status=failed"
  "tasks-kind|/console/tasks?kind=kpi_refresh"
  "tasks-created-window|/console/tasks?createdFrom=$(date -u -d '-3 days' +%Y-%m-%dT%H:%M)&createdTo=$(date -u -d '-2 days' +%Y-%m-%dT%H:%M)"
  "tasks-search-params|/console/tasks?search=organizerId%3Dorg_0042"
  "tasks-search-dead-org|/console/tasks?status=dead&search=organizerId%3Dorg_0042"
  "tasks-search-no-match|/console/tasks?search=organizerId%3Dorg_none"
  "tasks-search-result|/console/tasks?in=result&search=entryId%3D$(echo -n 4242 | md5sum | cut -c1-32)"
  "task-detail|/console/tasks/$DEAD_ID"
  "task-live|/console/live/tasks/$DEAD_ID"
  "bulk-confirm-count-dead|/console/tasks/bulk?action=retry&status=dead"
  "workers|/console/workers"
  "schedules|/console/schedules"
)
{
  printf '%-26s %8s %8s %8s %8s %7s\n' page rps p50_ms p99_ms max_ms non2xx
  for entry in "${pages[@]}"; do
    name=${entry%%|*}
    path=${entry#*|}
    code=$(curl -sS -o /dev/null -w '%{http_code}' -H "Cookie: $COOKIE" "$API_URL$path")
    [ "$code" = 200 ] || die "$name ($path) answered $code"
    line=$(timeout $((PAGE_SECONDS + 30)) wrk -t1 -c"$CONNS" -d"${PAGE_SECONDS}s" --timeout 5s \
      -H "Cookie: $COOKIE" -s "$BENCH_DIR/wrk_result.lua" "$API_URL$path" | grep '^RESULT')
    python3 - "$name" "$line" <<'PY'
import sys
name, line = sys.argv[1], sys.argv[2]
kv = dict(p.split("=") for p in line.split()[1:])
print(f"{name:<26} {float(kv['rps']):8.1f} {int(kv['p50_us'])/1000:8.1f} {int(kv['p99_us'])/1000:8.1f} "
      f"{int(kv['max_us'])/1000:8.1f} {kv['non2xx']:>7}")
PY
  done
} | tee "$OUT/pages.txt"

# What the live overview costs Postgres: one console polling every 5 s.
backend_ticks() {
  local pids
  pids=$(psql_admin -Atc "SELECT pid FROM pg_stat_activity WHERE datname = '$BENCH_DB' AND pid <> pg_backend_pid()")
  python3 - $pids <<'PY'
import json, sys
out = {}
for pid in sys.argv[1:]:
    try:
        data = open(f"/proc/{pid}/stat").read()
    except OSError:
        continue
    fields = data[data.rindex(")") + 2:].split()
    out[pid] = int(fields[11]) + int(fields[12])
print(json.dumps(out))
PY
}
say "overview cost: polling /console/live/overview every 5 s for ${POLL_SECONDS} s"
sleep 6 # the counts cache of the page runs above expires
before=$(backend_ticks)
end=$(($(date +%s) + POLL_SECONDS))
polls=0
while [ "$(date +%s)" -lt "$end" ]; do
  curl -sS -o /dev/null -H "Cookie: $COOKIE" "$API_URL/console/live/overview"
  polls=$((polls + 1))
  sleep 5
done
after=$(backend_ticks)
python3 - "$before" "$after" "$POLL_SECONDS" "$polls" <<'PY' | tee "$OUT/overview-cost.txt"
import json, os, sys
before, after = json.loads(sys.argv[1]), json.loads(sys.argv[2])
seconds, polls = float(sys.argv[3]), int(sys.argv[4])
tick = os.sysconf("SC_CLK_TCK")
used = sum(after[p] - before.get(p, 0) for p in after) / tick
print(f"overview polls: {polls} in {seconds:.0f} s; Postgres backends of this database used "
      f"{used:.2f} s of CPU = {100 * used / seconds:.2f} % of one core "
      f"({1000 * used / max(polls, 1):.1f} ms per poll)")
PY

# The per-poll SQL of the overview, as Postgres runs it.
psql_bench -c "EXPLAIN (ANALYZE, BUFFERS, SUMMARY) SELECT queue, sum(pending) FROM (
   SELECT queue, count(*) FILTER (WHERE status = 'pending' AND run_at <= now()) AS pending FROM tasks WHERE status IN ('pending', 'retrying') GROUP BY queue
   UNION ALL SELECT queue, count(*) FROM tasks WHERE status = 'running' GROUP BY queue
   UNION ALL SELECT queue, count(*) FILTER (WHERE status = 'dead') FROM tasks WHERE status IN ('failed', 'dead') GROUP BY queue) s GROUP BY queue" \
  >"$OUT/explain-queue-stats.txt"
psql_bench -c "EXPLAIN (ANALYZE, BUFFERS, SUMMARY) SELECT kind, count(*) FROM tasks WHERE status = 'dead' GROUP BY kind" \
  >"$OUT/explain-dead-by-kind.txt"
grep -h "Execution Time" "$OUT"/explain-*.txt | sed 's/^ */explain: /'
echo "results in $OUT"
