#!/usr/bin/env bash
# Deliveries per second of 1 and 2 worker processes against a local fake 360dialog that
# answers in 20 ms (scripts/bench/fake_360dialog.py). Issue 5's target: >= 1,000/s per process.
#
#   scripts/bench/deliveries.sh            # N=20000 deliveries per run, 1 then 2 processes
#
# Each run: a fresh database (taquilla_bench_deliveries) and Redis prefix, the workers
# started and idle, then N `delivery` tasks (+ their delivery rows and guests) inserted in
# one transaction, as a bulk fan-out leaves them; the relay pushes them and the workers send.
# Rate = N / (last task finished - tasks due), from the task rows (due 3 s after the insert,
# once the tables are analyzed). Only 127.0.0.1.
# Overridable: BENCH_DELIVERIES, BENCH_CONCURRENCY (per process), BENCH_PROVIDER_DELAY_MS,
# BENCH_PROVIDER_PORT, BENCH_PG_ADMIN_URL, BENCH_PROCESSES ("1 2"), WORKER_BIN (a worker
# binary to use instead of building one), BENCH_SETUP_SQL (run once the migrations are applied,
# e.g. to time the write path without a trigger).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD

N=${BENCH_DELIVERIES:-20000}
CONC=${BENCH_CONCURRENCY:-128}
DELAY_MS=${BENCH_PROVIDER_DELAY_MS:-20}
PROVIDER_PORT=${BENCH_PROVIDER_PORT:-18474}
PROCESSES=${BENCH_PROCESSES:-"1 2"}
PG_ADMIN_URL=${BENCH_PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB=taquilla_bench_deliveries
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/taquilla/target}
LOG_DIR=$ROOT/var/bench-deliveries
mkdir -p "$LOG_DIR"

export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB"
export REDIS_URL=redis://127.0.0.1:6379 REDIS_PREFIX=benchdeliv RUST_LOG=warn LOG_FORMAT=text
export WHATSAPP_API_URL="http://127.0.0.1:$PROVIDER_PORT" WHATSAPP_API_KEY=bench-key
# The limiter stays on (its Lua call is part of each send's cost) with a limit never reached.
export WHATSAPP_MAX_PER_SECOND=1000000
export WORKER_QUEUES=deliveries WORKER_CONCURRENCY=$CONC DATABASE_MAX_CONNECTIONS=${BENCH_DB_CONNECTIONS:-20}
export OUTBOX_DIR=$LOG_DIR/outbox

say() { printf '==> %s\n' "$*" >&2; }
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

if [ -n "${WORKER_BIN:-}" ]; then
  BIN=$WORKER_BIN
else
  say "building the worker (profile bench-deliveries)"
  cargo build -q --profile bench-deliveries -p taquilla-worker --bin worker
  BIN="$CARGO_TARGET_DIR/bench-deliveries/worker"
fi

python3 scripts/bench/fake_360dialog.py "$PROVIDER_PORT" "$DELAY_MS" >"$LOG_DIR/provider.log" 2>&1 &
PROVIDER_PID=$!
PIDS+=("$PROVIDER_PID")
for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$PROVIDER_PORT") 2>/dev/null && break; sleep 0.1; done

cpu_seconds() { # utime + stime of a pid, in seconds
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.1f", ($14 + $15) / hz }' "/proc/$1/stat"
}

run() {
  local procs=$1 i pids=()
  say "run: $procs worker process(es), concurrency $CONC each, $N deliveries, provider ${DELAY_MS} ms"
  psql "$PG_ADMIN_URL" -X -q -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
  redis-cli --scan --pattern 'benchdeliv*' | xargs -r redis-cli del >/dev/null
  for i in $(seq 1 "$procs"); do
    "$BIN" >"$LOG_DIR/worker-$procs-$i.log" 2>&1 &
    pids+=($!)
    PIDS+=($!)
  done
  # Every migration applied (the workers apply them at start-up).
  local migrations
  migrations=$(find migrations -name '*.sql' | wc -l)
  for _ in $(seq 1 100); do
    [ "$(psql "$DATABASE_URL" -X -qtA -c "SELECT count(*) FROM _sqlx_migrations WHERE success" 2>/dev/null)" = "$migrations" ] && break
    sleep 0.2
  done
  if [ -n "${BENCH_SETUP_SQL:-}" ]; then
    psql "$DATABASE_URL" -X -q -v ON_ERROR_STOP=1 -c "$BENCH_SETUP_SQL"
  fi
  sleep 1
  local cpu0=()
  for i in "${pids[@]}"; do cpu0+=("$(cpu_seconds "$i")"); done
  psql "$DATABASE_URL" -X -q -v ON_ERROR_STOP=1 <<SQL
INSERT INTO organizers (id, name) VALUES ('org_bench', 'Bench');
INSERT INTO events (id, organizer_id, name) VALUES ('ev_bench', 'org_bench', 'Bench Fest');
INSERT INTO guests (id, event_id, name, phone)
  SELECT 'g' || i, 'ev_bench', 'Guest ' || i, '+52155' || lpad(i::text, 7, '0') FROM generate_series(1, $N) AS i;
BEGIN;
WITH g AS (SELECT id AS guest_id, gen_random_uuid() AS id FROM guests),
d AS (INSERT INTO deliveries (id, event_id, guest_id, channel, kind, status, task_id)
      SELECT id, 'ev_bench', guest_id, 'whatsapp', 'invitation', 'queued', id FROM g RETURNING id, guest_id)
INSERT INTO tasks (id, kind, queue, status, params, max_attempts, requester, run_at, expires_at)
  SELECT id, 'delivery', 'deliveries', 'pending',
         jsonb_build_object('eventId', 'ev_bench', 'guestId', guest_id, 'channel', 'whatsapp', 'kind', 'invitation'),
         5, 'bench', now() + interval '3 seconds', now() + interval '1 day' FROM d;
COMMIT;
-- Fresh tables have no statistics: without them the planner may scan instead of using the
-- indexes, which makes each send cost O(N). The tasks are due in 3 s, after this.
ANALYZE guests; ANALYZE deliveries; ANALYZE tasks;
SQL
  local deadline=$((SECONDS + 600)) done=0
  while [ "$SECONDS" -lt "$deadline" ]; do
    done=$(psql "$DATABASE_URL" -X -qtA -c "SELECT count(*) FROM tasks WHERE status IN ('completed', 'failed', 'dead')")
    [ "$done" -ge "$N" ] && break
    sleep 0.5
  done
  local cpu=""
  for idx in "${!pids[@]}"; do
    cpu+="$(awk -v a="$(cpu_seconds "${pids[$idx]}")" -v b="${cpu0[$idx]}" 'BEGIN { printf "%.1f", a - b }') "
  done
  psql "$DATABASE_URL" -X -qtA -F ' ' -c "
    SELECT '$procs proc(s):', count(*) FILTER (WHERE t.status = 'completed') AS completed,
           count(*) FILTER (WHERE d.status = 'sent') AS sent,
           round(extract(epoch FROM max(t.finished_at) - min(t.run_at))::numeric, 2) AS seconds,
           round(count(*) / extract(epoch FROM max(t.finished_at) - min(t.run_at))::numeric) AS per_second,
           max(t.attempts) AS max_attempts
    FROM tasks t JOIN deliveries d ON d.task_id = t.id" | tee -a "$LOG_DIR/results.txt"
  echo "  worker CPU seconds during the run: $cpu" | tee -a "$LOG_DIR/results.txt"
  for i in "${pids[@]}"; do kill "$i"; done
  for i in "${pids[@]}"; do wait "$i" 2>/dev/null || true; done
}

echo "# $(date -u +%FT%TZ) N=$N concurrency=$CONC delay=${DELAY_MS}ms" >>"$LOG_DIR/results.txt"
for p in $PROCESSES; do run "$p"; done
psql "$PG_ADMIN_URL" -X -q -c "DROP DATABASE IF EXISTS $DB"
