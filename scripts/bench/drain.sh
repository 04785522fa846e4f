#!/usr/bin/env bash
# (b) Drain throughput: 50,000 `pending` tasks inserted with SQL, then PROCESSES release
# worker processes started on the kind's queue; measures until no task is left unfinished.
#
#   scripts/bench/drain.sh [PROCESSES] [KIND] [CONCURRENCY...]
#       PROCESSES    1 (default) or more
#       KIND         noop (default; queue maintenance) or assignment (queue assignments)
#       CONCURRENCY  WORKER_CONCURRENCY values, one run each (default: 16 64 200)
#
# Per run: fresh database and Redis keys; for `assignment`, 1,000 organizers and events
# (ev_N belongs to org_N) so no single balance row is a hot spot; 50,000 rows inserted;
# VACUUM ANALYZE; then the workers start (WORKER_QUEUES=<queue>) and a psql session asks
# every 100 ms whether a task of the kind is still pending, retrying or running, until none
# is (or TIMEOUT); then it counts those not completed (0 for a run that is a result).
# Reports wall time (worker start -> 0 left) and table time (max finished_at − min started_at),
# tasks/s for both, attempts, and CPU seconds per process name over the run.
# Env: TASKS (default 50000), TIMEOUT (s, default 300), DB_CONNECTIONS (worker pool size,
#      default: the binary's default, 20), PROFILE=1 (also sample pg_stat_activity every
#      50 ms and run `perf record -a -g` during the run; output in $LOG_DIR),
#      WORKER_PG_OPTIONS (diagnostic only: Postgres settings for the workers' connections,
#      e.g. '-c synchronous_commit=off' to see how much fsync latency bounds a run; such a run
#      no longer has durable task status and is not a result),
#      AFTER_SEED_SQL (diagnostic only: SQL run after seeding, before VACUUM, e.g.
#      'DROP INDEX tasks_params_search_idx' to see what an index costs; not a result either).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need psql redis-cli python3
check_binaries

PROCESSES=${1:-1}
KIND=${2:-noop}
shift $(($# > 2 ? 2 : $#))
concurrencies=("$@")
[ ${#concurrencies[@]} -gt 0 ] || concurrencies=(16 64 200)
TASKS=${TASKS:-50000}
TIMEOUT=${TIMEOUT:-300}
case $KIND in
  noop) QUEUE=maintenance ;;
  assignment) QUEUE=assignments ;;
  *) die "unknown kind '$KIND' (noop or assignment)" ;;
esac
[[ $PROCESSES =~ ^[1-9][0-9]*$ ]] || die "PROCESSES must be a positive number"

worker_env=("WORKER_QUEUES=$QUEUE")
[ -n "${DB_CONNECTIONS:-}" ] && worker_env+=("DATABASE_MAX_CONNECTIONS=$DB_CONNECTIONS")
if [ -n "${WORKER_PG_OPTIONS:-}" ]; then
  worker_env+=("DATABASE_URL=$DATABASE_URL?options=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$WORKER_PG_OPTIONS")")
fi

# Task ids as the api makes them: UUIDv7, time-ordered, so tasks enqueued one after another
# sort (and are relayed) in the order their rows were written. Here: the seeding statement's
# millisecond, the version, then the row's number in place of v7's random bits (the uuid
# crate's generator also counts within a millisecond). Random ids (gen_random_uuid) would make
# the relay hand tasks out in random order of their pages, which no api-made backlog does.
V7_ID="(lpad(to_hex((extract(epoch FROM now()) * 1000)::bigint), 12, '0') || '7000' || '8' || lpad(to_hex(g), 15, '0'))::uuid"

seed() {
  if [ "$KIND" = assignment ]; then
    psql_bench -c "
      INSERT INTO organizers (id, name) SELECT 'org_' || g, 'Organizer ' || g FROM generate_series(1, 1000) g;
      INSERT INTO events (id, organizer_id, name) SELECT 'ev_' || g, 'org_' || g, 'Event ' || g FROM generate_series(1, 1000) g;
      INSERT INTO tasks (id, kind, queue, status, params, max_attempts, requester, run_at, expires_at)
      SELECT $V7_ID, 'assignment', 'assignments', 'pending',
             jsonb_build_object('organizerId', 'org_' || (g % 1000 + 1), 'eventId', 'ev_' || (g % 1000 + 1),
                                'type', 'prepaid', 'tickets', 1, 'priceCents', 350, 'currency', 'MXN',
                                'metadata', '{}'::jsonb),
             3, 'bench', now(), now() + interval '1 day'
      FROM generate_series(1, $TASKS) g;"
  else
    psql_bench -c "
      INSERT INTO tasks (id, kind, queue, status, params, max_attempts, requester, run_at, expires_at)
      SELECT $V7_ID, 'noop', 'maintenance', 'pending', '{}'::jsonb, 3, 'bench', now(),
             now() + interval '1 day'
      FROM generate_series(1, $TASKS) g;"
  fi
  [ -n "${AFTER_SEED_SQL:-}" ] && psql_bench -c "$AFTER_SEED_SQL"
  psql_bench -c "VACUUM ANALYZE" >/dev/null
}

# pg_stat_activity sampler (PROFILE=1): every 50 ms, one row per active backend into
# bench_activity (its own transaction each time, so each sample is a fresh snapshot).
sample_activity() {
  local flag=$1
  while [ -e "$flag" ]; do
    echo "INSERT INTO bench_activity SELECT now(), coalesce(wait_event_type || ':' || wait_event, 'on CPU'),
            left(regexp_replace(query, '\s+', ' ', 'g'), 90)
          FROM pg_stat_activity
          WHERE datname = current_database() AND state = 'active'
            AND application_name NOT IN ('drain-poller', 'drain-sampler');"
    sleep 0.05
  done | PGAPPNAME=drain-sampler psql "$DATABASE_URL" -X -q >/dev/null 2>&1
}

machine_info
echo "kind=$KIND queue=$QUEUE processes=$PROCESSES tasks=$TASKS worker_pg_options='${WORKER_PG_OPTIONS:-}' pool=${DB_CONNECTIONS:-default (20)} QUEUE_MAX_READY=${QUEUE_MAX_READY:-default (1000)} RELAY_BATCH=${RELAY_BATCH:-default (200)}"
for conc in "${concurrencies[@]}"; do
  say "drain: kind=$KIND processes=$PROCESSES concurrency=$conc"
  reset_db
  reset_redis
  seed
  run_id="drain-$KIND-p$PROCESSES-c$conc"
  coproc POLL { PGAPPNAME=drain-poller psql "$DATABASE_URL" -X -q -At 2>&1; }
  # Only the benchmark's own kind: ledger writes also schedule a coalesced kpi_refresh
  # (queue maintenance), which the assignment workers do not run.
  # While the run lasts the poller only asks whether any task of the kind still waits or runs,
  # through the partial indexes (a few index pages): counting every row each 100 ms was a
  # sequential scan of the table, about a tenth of Postgres' CPU in a 4 s run, paid by the
  # system under test. The counts are taken once before and once after.
  count_left() {
    echo "SELECT count(*) FILTER (WHERE status <> 'completed') FROM tasks WHERE kind = '$KIND';" >&"${POLL[1]}"
    read -t 10 -r left <&"${POLL[0]}" || die "poller did not answer"
  }
  poll() {
    echo "SELECT (EXISTS (SELECT 1 FROM tasks WHERE status IN ('pending', 'retrying') AND kind = '$KIND')
               OR EXISTS (SELECT 1 FROM tasks WHERE status = 'running' AND kind = '$KIND'))::int;" >&"${POLL[1]}"
    read -t 10 -r active <&"${POLL[0]}" || die "poller did not answer"
  }
  count_left
  [ "$left" = "$TASKS" ] || die "expected $TASKS unfinished tasks, found $left"
  python3 "$BENCH_DIR/cpu_by_process.py" snap "$LOG_DIR/$run_id.cpu.json"
  prof_pids=()
  if [ "${PROFILE:-0}" = 1 ]; then
    # Plain functions run in a subshell here; the DO block ends when the poller disconnects.
    psql_bench -c "CREATE TABLE bench_activity (at timestamptz, wait text, query text)"
    touch "$LOG_DIR/$run_id.sampling"
    sample_activity "$LOG_DIR/$run_id.sampling" &
    prof_pids+=($!)
    BENCH_PIDS+=($!)
    perf_start "$LOG_DIR/$run_id.perf.data" "$TIMEOUT"
  fi
  t0=$(date +%s.%N)
  workers=()
  for ((p = 0; p < PROCESSES; p++)); do
    start_worker "${worker_env[@]}" "WORKER_CONCURRENCY=$conc"
    workers+=("$WORKER_PID")
  done
  status=ok
  while :; do
    poll
    [ "$active" = 0 ] && break
    if (($(date +%s) - ${t0%.*} > TIMEOUT)); then status=TIMEOUT; break; fi
    for w in "${workers[@]}"; do kill -0 "$w" 2>/dev/null || die "worker $w exited (see $LOG_DIR)"; done
    sleep 0.1
  done
  t1=$(date +%s.%N)
  wall=$(python3 -c "print(f'{$t1 - $t0:.3f}')")
  python3 "$BENCH_DIR/cpu_by_process.py" diff "$LOG_DIR/$run_id.cpu.json" "$wall" | tee "$LOG_DIR/$run_id.cpu.txt"
  count_left
  if [ "$status" = TIMEOUT ]; then
    status="TIMEOUT with $left left"
  elif [ "$left" != 0 ]; then
    status="stopped with $left tasks not completed"
  fi
  rm -f "$LOG_DIR/$run_id.sampling"
  [ "${PROFILE:-0}" = 1 ] && perf_stop
  poll_in=${POLL[1]}
  exec {poll_in}>&-
  for pid in "${prof_pids[@]}"; do stop_started "$pid" 20; done
  for w in "${workers[@]}"; do stop_started "$w" 30; done
  stats=$(psql_bench -At -F ' ' -c "
    SELECT count(*) FILTER (WHERE status = 'completed'),
           round(extract(epoch FROM max(finished_at) - min(started_at))::numeric, 3),
           round((count(*) / extract(epoch FROM max(finished_at) - min(started_at)))::numeric, 0),
           sum(attempts), count(*) FILTER (WHERE attempts > 1),
           count(DISTINCT worker)
    FROM tasks WHERE kind = '$KIND'")
  read -r completed table_s table_rate attempts retried worker_names <<<"$stats"
  wall_rate=$(python3 -c "print(round($TASKS / $wall))")
  # now() is constant within a transaction, so distinct timestamps count statements: claims
  # (started_at) and completions (finished_at; one per task when the handler commits itself).
  # Relay passes cannot be counted here: the claim clears `pushed_at`. Little's law gives the
  # mean number of tasks between claim and completion, to compare with the concurrency.
  batches=$(psql_bench -At -F ' ' -c "
    SELECT count(DISTINCT started_at), round(count(*)::numeric / count(DISTINCT started_at), 1),
           count(DISTINCT finished_at), round(count(*)::numeric / count(DISTINCT finished_at), 1),
           round(avg(extract(epoch FROM finished_at - started_at))::numeric * 1000, 2),
           round((count(*) / extract(epoch FROM max(finished_at) - min(started_at))
                  * avg(extract(epoch FROM finished_at - started_at)))::numeric, 1)
    FROM tasks WHERE kind = '$KIND' AND status = 'completed'")
  read -r claims claim_avg completes complete_avg claim_to_done_ms in_claimed <<<"$batches"
  extra=""
  if [ "$KIND" = assignment ]; then
    extra=" ledger_entries=$(psql_bench -Atc 'SELECT count(*) FROM director_ledger_entries') balance_tickets=$(psql_bench -Atc 'SELECT sum(tickets) FROM organizer_balances')"
  fi
  echo "DRAIN kind=$KIND processes=$PROCESSES concurrency=$conc status=$status completed=$completed wall_s=$wall wall_tasks_per_s=$wall_rate table_s=$table_s table_tasks_per_s=$table_rate attempts=$attempts retried=$retried worker_names=$worker_names$extra"
  echo "STATEMENTS kind=$KIND processes=$PROCESSES concurrency=$conc claim_stmts=$claims avg_claim_batch=$claim_avg complete_stmts=$completes avg_complete_batch=$complete_avg avg_claim_to_complete_ms=$claim_to_done_ms mean_tasks_claimed_not_completed=$in_claimed"
  if [ "${PROFILE:-0}" = 1 ]; then
    echo "--- pg_stat_activity, active backends sampled every 50 ms: (wait event, statement) by share of samples"
    psql_bench -c "SELECT count(*) AS samples, round(100.0 * count(*) / sum(count(*)) OVER (), 1) AS pct, wait, query
                   FROM bench_activity GROUP BY wait, query ORDER BY 1 DESC LIMIT 12" | tee "$LOG_DIR/$run_id.activity.txt"
    psql_bench -Atc "SELECT 'avg active backends per sample: ' || round(count(*)::numeric / greatest(count(DISTINCT at), 1), 2) FROM bench_activity"
    perf_summary "$LOG_DIR/$run_id.perf.data" 30
  fi
done
