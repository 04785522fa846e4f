#!/usr/bin/env bash
# What Postgres alone allows on this machine: pgbench runs the SQL of one unit of work
# without api, worker or Redis, so its tps is the ceiling the real benchmark can approach.
#
#   scripts/bench/sql-ceiling.sh accept [CLIENTS...]       task INSERT of POST /director/assign
#                                                         (accept-sql.pgbench; compare accept.sh)
#   scripts/bench/sql-ceiling.sh assignment [CLIENTS...]  claim + handler transaction of one
#                                                         assignment (assignment-sql.pgbench,
#                                                         50,000 tasks, 1,000 organizers; compare
#                                                         drain.sh N assignment)
# CLIENTS default: 16. Env: DURATION (s, default 15), BENCH_SETUP_SQL (run on the fresh database
# before the load, e.g. `ALTER TABLE … DISABLE TRIGGER …` to time the write path without it).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need psql python3
check_binaries
PGBENCH=$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | tail -1)
[ -x "$PGBENCH" ] || die "pgbench not found (Debian: it comes with the postgresql server package)"
DURATION=${DURATION:-15}
WHAT=${1:-assignment}
shift || true
clients=("$@")
[ ${#clients[@]} -gt 0 ] || clients=(16)
case $WHAT in accept | assignment) ;; *) die "unknown workload '$WHAT' (accept or assignment)" ;; esac

setup() {
  reset_db
  reset_redis
  if [ "$WHAT" = assignment ]; then
    psql_bench -c "
      INSERT INTO organizers (id, name) SELECT 'org_' || g, 'Organizer ' || g FROM generate_series(1, 1000) g;
      INSERT INTO events (id, organizer_id, name) SELECT 'ev_' || g, 'org_' || g, 'Event ' || g FROM generate_series(1, 1000) g;
      INSERT INTO tasks (id, kind, queue, status, params, max_attempts, requester, run_at, expires_at)
      SELECT md5(g::text)::uuid, 'assignment', 'assignments', 'pending',
             jsonb_build_object('organizerId', 'org_' || (g % 1000 + 1), 'eventId', 'ev_' || (g % 1000 + 1),
                                'type', 'prepaid', 'tickets', 1, 'priceCents', 350, 'currency', 'MXN', 'metadata', '{}'::jsonb),
             3, 'bench', now(), now() + interval '1 day'
      FROM generate_series(1, 50000) g;
      CREATE SEQUENCE bench_task_seq MAXVALUE 50000;" >/dev/null
  else
    load_demo_data
  fi
  if [ -n "${BENCH_SETUP_SQL:-}" ]; then
    psql_bench -c "$BENCH_SETUP_SQL" >/dev/null
  fi
  psql_bench -c "VACUUM ANALYZE" >/dev/null
}

machine_info
for c in "${clients[@]}"; do
  say "$WHAT SQL via pgbench: $c clients, ${DURATION}s"
  setup
  python3 "$BENCH_DIR/cpu_by_process.py" snap "$LOG_DIR/sql-ceiling.cpu.json"
  echo "--- pgbench -n -M prepared -c $c -j 2 -T $DURATION -f scripts/bench/$WHAT-sql.pgbench"
  # assignment: the sequence stops at 50,000, so a longer run fails instead of reusing tasks.
  timeout $((DURATION + 30)) "$PGBENCH" -n -M prepared -c "$c" -j 2 -T "$DURATION" \
    -f "$BENCH_DIR/$WHAT-sql.pgbench" "$DATABASE_URL" >"$LOG_DIR/pgbench.out" 2>&1 &
  pgbench_pid=$!
  BENCH_PIDS+=("$pgbench_pid")
  # CPU taken while pgbench's connections still exist (the diff misses ended processes).
  sleep $((DURATION - 1))
  python3 "$BENCH_DIR/cpu_by_process.py" diff "$LOG_DIR/sql-ceiling.cpu.json" $((DURATION - 1))
  wait "$pgbench_pid" || true
  grep -E 'transactions actually|failed|latency average|^tps' "$LOG_DIR/pgbench.out" || cat "$LOG_DIR/pgbench.out"
  echo "SQLCEILING workload=$WHAT clients=$c $(grep -E '^tps' "$LOG_DIR/pgbench.out" | awk '{print "tps=" $3}')"
done
