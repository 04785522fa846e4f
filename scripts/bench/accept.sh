#!/usr/bin/env bash
# (a) Accept throughput of POST /director/assign: the api alone (release, no worker),
# against a fresh database with the demo data, loaded by wrk from this machine.
#
#   scripts/bench/accept.sh [CONNECTIONS...]      default: 16 32 64
#
# Per connection count: fresh database and Redis keys, api started, 5 s warm-up, then
#   wrk -t2 -cN -d${DURATION:-20}s --latency -s scripts/bench/post.lua $API_URL/director/assign
# Prints wrk's report, a RESULT line per run and the rows the api committed.
# Env: DURATION (s, default 20), WARMUP (s, default 5), THREADS (default 2),
#      API_DB_CONNECTIONS (api pool size, default: the binary's default, 20),
#      PROFILE=1 (perf record -a -g during the measured run; report in $LOG_DIR).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need wrk psql redis-cli curl
check_binaries

DURATION=${DURATION:-20}
WARMUP=${WARMUP:-5}
THREADS=${THREADS:-2}
conns=("$@")
[ ${#conns[@]} -gt 0 ] || conns=(16 32 64)
api_env=()
[ -n "${API_DB_CONNECTIONS:-}" ] && api_env+=("DATABASE_MAX_CONNECTIONS=$API_DB_CONNECTIONS")
export BENCH_TOKEN

machine_info
echo "api pool: ${API_DB_CONNECTIONS:-default (20)}; QUEUE_MAX_READY default (1000); no worker running"
for c in "${conns[@]}"; do
  say "accept: -c$c"
  reset_db
  reset_redis
  load_demo_data
  start_api "${api_env[@]}"
  # Sanity: one request must be accepted.
  code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$API_URL/director/assign" \
    -H "Authorization: Bearer $BENCH_TOKEN" -H 'Content-Type: application/json' \
    -d '{"organizerId":"org_demo","eventId":"ev_demo","type":"prepaid","tickets":1,"price":3.5}')
  [ "$code" = 202 ] || die "sanity request answered $code, expected 202"
  wrk -t"$THREADS" -c"$c" -d"${WARMUP}s" -s "$BENCH_DIR/post.lua" "$API_URL/director/assign" >/dev/null
  sleep 0.5
  before=$(psql_bench -Atc "SELECT count(*) FROM tasks")
  echo "--- wrk -t$THREADS -c$c -d${DURATION}s --latency -s scripts/bench/post.lua $API_URL/director/assign"
  python3 "$BENCH_DIR/cpu_by_process.py" snap "$LOG_DIR/accept-c$c.cpu.json"
  [ "${PROFILE:-0}" = 1 ] && perf_start "$LOG_DIR/accept-c$c.perf.data" $((DURATION + 5))
  out=$(timeout $((DURATION + 30)) wrk -t"$THREADS" -c"$c" -d"${DURATION}s" --timeout 5s --latency \
    -s "$BENCH_DIR/post.lua" "$API_URL/director/assign")
  echo "$out"
  python3 "$BENCH_DIR/cpu_by_process.py" diff "$LOG_DIR/accept-c$c.cpu.json" "$DURATION"
  if [ "${PROFILE:-0}" = 1 ]; then
    perf_stop
    perf_summary "$LOG_DIR/accept-c$c.perf.data" 40
  fi
  sleep 0.5
  after=$(psql_bench -Atc "SELECT count(*) FROM tasks")
  pushed=$(psql_bench -Atc "SELECT count(*) FILTER (WHERE pushed_at IS NOT NULL) FROM tasks")
  depth=$(( $(rcli LLEN bench.assignments:active) + $(rcli ZCARD bench.assignments:scheduled) ))
  errors=$(grep -ciE ' (ERROR|WARN) ' "$LOG_DIR/api.log" || true)
  result=$(grep '^RESULT' <<<"$out")
  echo "ACCEPT c=$c ${result#RESULT } rows_committed=$((after - before)) rows_pushed_total=$pushed redis_depth=$depth api_log_warn_error_lines=$errors"
  stop_started "$API_PID"
done
