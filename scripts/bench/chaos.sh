#!/usr/bin/env bash
# Chaos: worker processes SIGKILLed one at a time while a backlog drains (issue 10, §3).
# Every task is innocent (`noop`, optionally sleeping SLEEP_MS); none may end `dead`.
#
#   scripts/bench/chaos.sh [PROCESSES] [TASKS]
#       PROCESSES  worker processes (default 4); a killed one is restarted at once
#       TASKS      noop tasks inserted with SQL before the workers start (default 15000)
#
# Every KILL_EVERY seconds (default 1) one worker process, in turn, gets SIGKILL. Reports
# the wall time, kills, tasks by status, how many lost a lease (forgiven losses) and how many
# ran alone (`isolate`). A poison task can be added with POISON=1 (a noop that aborts its
# worker; the workers run with NOOP_ALLOW_CRASH=1): it must end `dead`, the rest `completed`.
# Env: CONCURRENCY (WORKER_CONCURRENCY, default 16), SLEEP_MS (default 0), KILL_EVERY (s,
#      default 1), LEASE (TASK_LEASE_SECONDS, default 2), TIMEOUT (s, default 600).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need psql redis-cli python3
check_binaries

PROCESSES=${1:-4}
TASKS=${2:-15000}
CONCURRENCY=${CONCURRENCY:-16}
SLEEP_MS=${SLEEP_MS:-0}
KILL_EVERY=${KILL_EVERY:-1}
LEASE=${LEASE:-2}
TIMEOUT=${TIMEOUT:-600}

machine_info
echo "processes=$PROCESSES tasks=$TASKS concurrency=$CONCURRENCY sleep_ms=$SLEEP_MS kill_every_s=$KILL_EVERY lease_s=$LEASE poison=${POISON:-0}"
reset_db
reset_redis
psql_bench -c "
  INSERT INTO tasks (id, kind, queue, status, params, max_attempts, requester, run_at, expires_at)
  SELECT gen_random_uuid(), 'noop', 'maintenance', 'pending',
         jsonb_build_object('sleepMs', $SLEEP_MS, 'n', g), 3, 'bench', now(), now() + interval '1 day'
  FROM generate_series(1, $TASKS) g;"
if [ "${POISON:-0}" = 1 ]; then
  psql_bench -c "
    INSERT INTO tasks (id, kind, queue, status, params, max_attempts, requester, run_at, expires_at)
    VALUES (gen_random_uuid(), 'noop', 'maintenance', 'pending', '{\"crash\": true}', 3, 'poison', now(),
            now() + interval '1 day');"
fi
psql_bench -c "VACUUM ANALYZE" >/dev/null

worker_env=("WORKER_QUEUES=maintenance" "WORKER_CONCURRENCY=$CONCURRENCY" "TASK_LEASE_SECONDS=$LEASE"
  "QUEUE_REPUSH_AFTER_SECONDS=2" "NOOP_ALLOW_CRASH=1")
workers=()
for ((p = 0; p < PROCESSES; p++)); do
  start_worker "${worker_env[@]}"
  workers+=("$WORKER_PID")
done

t0=$(date +%s.%N)
last_kill=$(date +%s.%N)
kills=0
crashes=0
victim=0
status=ok
while :; do
  read -r left <<<"$(psql_bench -At -c "SELECT count(*) FROM tasks WHERE status NOT IN ('completed', 'failed', 'dead', 'cancelled')")"
  [ "$left" = 0 ] && break
  if (($(date +%s) - ${t0%.*} > TIMEOUT)); then status="TIMEOUT with $left left"; break; fi
  # Restart any worker that died (killed by us, or by the poison task).
  for i in "${!workers[@]}"; do
    if ! kill -0 "${workers[$i]}" 2>/dev/null; then
      wait "${workers[$i]}" 2>/dev/null || true
      crashes=$((crashes + 1))
      start_worker "${worker_env[@]}"
      workers[$i]=$WORKER_PID
    fi
  done
  now=$(date +%s.%N)
  if python3 -c "import sys; sys.exit(0 if $now - $last_kill >= $KILL_EVERY else 1)"; then
    kill -KILL "${workers[$victim]}" 2>/dev/null || true
    kills=$((kills + 1))
    victim=$(((victim + 1) % PROCESSES))
    last_kill=$now
  fi
  sleep 0.05
done
t1=$(date +%s.%N)
for w in "${workers[@]}"; do stop_started "$w" 30; done
wall=$(python3 -c "print(f'{$t1 - $t0:.1f}')")
echo "--- tasks by status (innocent = requester bench)"
psql_bench -c "SELECT requester, status, count(*), sum(attempts) AS attempts,
                      count(*) FILTER (WHERE lease_losses > 0) AS lost_a_lease,
                      sum(lease_losses) AS forgiven_losses,
                      count(*) FILTER (WHERE isolate) AS ran_alone
               FROM tasks GROUP BY requester, status ORDER BY requester, status"
dead=$(psql_bench -At -c "SELECT count(*) FROM tasks WHERE requester = 'bench' AND status = 'dead'")
echo "CHAOS processes=$PROCESSES tasks=$TASKS status=$status wall_s=$wall sigkills=$kills restarts=$crashes innocent_dead=$dead"
[ "$dead" = 0 ] || exit 1
