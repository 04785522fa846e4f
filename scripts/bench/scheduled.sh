#!/usr/bin/env bash
# Issue 13's scheduled-work figures: TASKS `noop` tasks (default 100,000) all due in the same
# second, inserted with SQL as a bulk of `runAt` requests leaves them (`pending`, `run_at` in
# the future, nothing in Redis), with one release worker process already running and idle.
# Reports N — from the due second to the last task started —, the start delay distribution
# (started_at − run_at: p50, p90, p99, max), the most messages Redis held in the queue's ready
# list (sampled every 50 ms; the bound is QUEUE_MAX_READY), and Redis memory before and at
# its peak.
#
#   scripts/bench/scheduled.sh            env: TASKS, LEAD (s until due, default 15),
#                                              WORKER_CONCURRENCY (default 64), TIMEOUT (s, 600)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need psql redis-cli python3
check_binaries

TASKS=${TASKS:-100000}
LEAD=${LEAD:-15}
TIMEOUT=${TIMEOUT:-600}
MAX_READY=${QUEUE_MAX_READY:-1000}

machine_info
reset_db
reset_redis
start_worker WORKER_QUEUES=maintenance WORKER_CONCURRENCY="${WORKER_CONCURRENCY:-64}" QUEUE_MAX_READY="$MAX_READY"
sleep 2
mem_before=$(rcli INFO memory | tr -d '\r' | awk -F: '/^used_memory:/ {print $2}')
due=$(python3 -c "import time; print(int(time.time()) + $LEAD)")
say "inserting $TASKS noop tasks due at $(date -u -d "@$due" +%H:%M:%S) (in ${LEAD}s)"
psql_bench -c "INSERT INTO tasks (id, kind, queue, params, max_attempts, requester, run_at)
  SELECT gen_random_uuid(), 'noop', 'maintenance', '{}'::jsonb, 3, 'bench', to_timestamp($due)
  FROM generate_series(1, $TASKS); ANALYZE tasks;" >/dev/null
now=$(date +%s)
[ "$now" -lt "$due" ] || die "the insert took past the due second: raise LEAD"
[ "$(rcli LLEN bench.maintenance:active)" = 0 ] || die "Redis holds scheduled work before it is due"

# Samples the ready list and Redis memory until every task has started.
python3 - "$TIMEOUT" "$MAX_READY" <<'PY' >"$LOG_DIR/scheduled.samples"
import subprocess, sys, time
timeout, bound = float(sys.argv[1]), int(sys.argv[2])
def r(*a):
    return subprocess.run(["redis-cli", *a], capture_output=True, text=True).stdout
def left():
    return int(subprocess.run(["psql", "-XAtc", "SELECT count(*) FROM tasks WHERE started_at IS NULL",
                               __import__("os").environ["DATABASE_URL"]], capture_output=True,
                              text=True).stdout.strip() or -1)
peak_len, peak_mem, end, n = 0, 0, time.time() + timeout, 0
while time.time() < end:
    peak_len = max(peak_len, int(r("LLEN", "bench.maintenance:active").strip() or 0))
    mem = [l for l in r("INFO", "memory").splitlines() if l.startswith("used_memory:")]
    peak_mem = max(peak_mem, int(mem[0].split(":")[1]) if mem else 0)
    n += 1
    if n % 10 == 0 and left() == 0:
        break
    time.sleep(0.05)
print(f"peak_ready={peak_len} bound={bound} peak_used_memory={peak_mem}")
PY
cat "$LOG_DIR/scheduled.samples"
psql_bench -Atc "
  SELECT 'SCHEDULED tasks=' || count(*) || ' started=' || count(started_at)
      || ' completed=' || count(*) FILTER (WHERE status = 'completed')
      || ' N_seconds=' || round(extract(epoch FROM max(started_at) - to_timestamp($due))::numeric, 2)
      || ' delay_p50_ms=' || round((1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - run_at)))::numeric)
      || ' delay_p90_ms=' || round((1000 * percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - run_at)))::numeric)
      || ' delay_p99_ms=' || round((1000 * percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - run_at)))::numeric)
      || ' delay_max_ms=' || round((1000 * extract(epoch FROM max(started_at - run_at)))::numeric)
      || ' started_before_due=' || count(*) FILTER (WHERE started_at < run_at)
  FROM tasks"
echo "redis used_memory before=$mem_before"
