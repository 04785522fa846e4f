#!/usr/bin/env bash
# Report exports (issue 4): the ledger exported as CSV and XLSX, 100,000 and 1,000,000 rows,
# Postgres → file → S3 (a local SeaweedFS started here), through the release api and worker.
# Per run: wall time from POST to `completed` (and the task's own started→finished time),
# the worker process's peak RSS (VmHWM; one fresh worker per run, its idle peak shown too),
# rows and file size.
#
#   scripts/bench/exports.sh       # loads scripts/bench/director-data.sql (the director
#                                  # benchmark's data set, 1,000,000 ledger entries) into
#                                  # taquilla_bench_exports once; later runs reuse it
#   ROUNDS=3 scripts/bench/exports.sh
#   FORMATS=xlsx EXPORT_XLSX_ZIP_LEVEL=1 scripts/bench/exports.sh
#
# Sizes: 100,000 (limit), about 500,000 (from the middle day) and 1,000,000 (everything).
set -euo pipefail
export BENCH_DB=${BENCH_DB:-taquilla_bench_exports}
export BENCH_PORT=${BENCH_PORT:-18482}
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=../lib/services.sh
source "$ROOT/scripts/lib/services.sh"
export REDIS_PREFIX=benchexp
ROUNDS=${ROUNDS:-2}
need psql curl python3
check_binaries

OUT="$LOG_DIR/exports-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
machine_info | tee "$OUT/machine.txt"
{
  echo "--- top at start (other load on the shared cores)"
  top -bn1 -w 200 | sed -n 1,15p
} | tee -a "$OUT/machine.txt"

n=$(psql_bench -Atc "SELECT count(*) FROM director_ledger_entries" 2>/dev/null || echo 0)
if [ "$n" -lt 1000000 ]; then
  say "loading director-data.sql into a fresh $BENCH_DB (about 3 minutes)"
  reset_db
  psql_bench -f "$BENCH_DIR/director-data.sql" >"$OUT/data.log" 2>&1 || die "data load failed (see $OUT/data.log)"
fi
psql_bench -Atc "SELECT 'ledger entries: ' || count(*) FROM director_ledger_entries" | tee -a "$OUT/machine.txt"

start_s3_server "${TMPDIR:-/tmp}/taquilla-bench-s3"
trap 'stop_s3_server; bench_cleanup' EXIT
export S3_BUCKET=taquilla-bench S3_ENDPOINT="http://127.0.0.1:$TAQUILLA_S3_PORT"
export S3_ACCESS_KEY_ID=testkey S3_SECRET_ACCESS_KEY=testsecret
export EXPORT_SCRATCH_DIR="$OUT/scratch"
"$BIN_DIR/worker" ensure-storage >>"$OUT/ensure-storage.log" 2>&1 || die "bucket not created (see $OUT/ensure-storage.log)"
rcli --scan --pattern 'benchexp*' | xargs -r -n 500 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" DEL >/dev/null
start_api
AUTH="Authorization: Bearer $BENCH_TOKEN"

# Waits for the task to finish; prints "status rows sizeBytes task_s export_s upload_s"
# (export = count + stream + write the file; upload = to S3).
follow() {
  python3 - "$API_URL" "$BENCH_TOKEN" "$1" <<'PY'
import json, sys, time, urllib.request
base, token, task = sys.argv[1:4]
def get(path):
    req = urllib.request.Request(base + path, headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, timeout=70) as r:
        return json.load(r)
while True:
    t = get(f"/tasks/{task}?wait=30")
    if t["status"] in ("completed", "failed", "dead", "cancelled"):
        break
r = t.get("result") or {}
from datetime import datetime
def ts(s): return datetime.fromisoformat(s.replace("Z", "+00:00"))
secs = (ts(t["finishedAt"]) - ts(t["startedAt"])).total_seconds() if t.get("finishedAt") and t.get("startedAt") else float("nan")
tm = r.get("timings", {})
print(t["status"], r.get("rows", "-"), r.get("sizeBytes", "-"), f"{secs:.2f}",
      f"{tm.get('exportMs', 0) / 1000:.2f}", f"{tm.get('uploadMs', 0) / 1000:.2f}")
PY
}

# About half the ledger: every entry from the day of the 500,000th newest one.
HALF_FROM=$(psql_bench -Atc "SELECT (created_at AT TIME ZONE 'UTC')::date FROM director_ledger_entries ORDER BY created_at DESC OFFSET 499999 LIMIT 1")

{
  printf '%-9s %-5s %5s %8s %8s %9s %9s %9s %9s %9s  %s\n' rows format round wall_s task_s export_s upload_s peak_MiB idle_MiB file_MB status
  for rows in 100000 500000 1000000; do
    for fmt in ${FORMATS:-csv xlsx}; do
      for ((round = 1; round <= ROUNDS; round++)); do
        start_worker WORKER_QUEUES=reports WORKER_CONCURRENCY_REPORTS=1 RUST_LOG=warn,jobs::exports=info
        sleep 1.5
        idle=$(awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$WORKER_PID/status")
        case $rows in
          1000000) body="{\"report\":\"ledger\",\"format\":\"$fmt\"}" ;;
          500000) body="{\"report\":\"ledger\",\"format\":\"$fmt\",\"from\":\"$HALF_FROM\"}" ;;
          *) body="{\"report\":\"ledger\",\"format\":\"$fmt\",\"limit\":$rows}" ;;
        esac
        t0=$(date +%s.%N)
        id=$(curl -fsS -H "$AUTH" -H 'content-type: application/json' -d "$body" "$API_URL/director/reports/exports" |
          python3 -c 'import json,sys; print(json.load(sys.stdin)["taskId"])')
        read -r status got size task_s export_s upload_s < <(follow "$id")
        t1=$(date +%s.%N)
        peak=$(awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$WORKER_PID/status")
        pack=$(grep -a 'xlsx packed' "$LOG_DIR/worker-$((${#BENCH_PIDS[@]} - 1)).log" 2>/dev/null |
          tail -1 | sed 's/\x1b\[[0-9;]*m//g' | grep -o 'pack_ms=[0-9]*' || true)
        stop_started "$WORKER_PID"
        printf '%-9s %-5s %5s %8.2f %8s %9s %9s %9s %9s %9.1f  %s (%s rows)\n' "$rows" "$fmt" "$round" \
          "$(echo "$t1 - $t0" | bc)" "$task_s" "$export_s" "$upload_s" "$peak" "$idle" \
          "$(echo "$size / 1000000" | bc -l)" "$status" "$got ${pack}"
      done
    done
  done
} | tee "$OUT/exports.txt"
echo "output: $OUT"
