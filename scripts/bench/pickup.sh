#!/usr/bin/env bash
# (c) Pickup latency with the api and one idle worker (release, default worker config:
# all queues, concurrency 16): scripts/bench/pickup.py twice, with 2–20 ms gaps
# (COUNT requests) and with 10–200 ms gaps (IDLE_COUNT requests, the worker idles between tasks).
#
#   scripts/bench/pickup.sh
# Env: COUNT (default 2000), IDLE_COUNT (default 1000).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need psql redis-cli python3 curl
check_binaries

COUNT=${COUNT:-2000}
IDLE_COUNT=${IDLE_COUNT:-1000}
export API_URL BENCH_TOKEN

machine_info
reset_db
reset_redis
load_demo_data
start_api
start_worker
# Let the worker register its queues and subscribe to the wake channels.
sleep 3
# Warm-up, not measured: connections, caches.
python3 "$BENCH_DIR/pickup.py" --count 20 --min-gap-ms 2 --max-gap-ms 20 --label warmup >/dev/null
echo "--- python3 scripts/bench/pickup.py --count $COUNT --min-gap-ms 2 --max-gap-ms 20"
python3 "$BENCH_DIR/pickup.py" --count "$COUNT" --min-gap-ms 2 --max-gap-ms 20 --label busy
echo "--- python3 scripts/bench/pickup.py --count $IDLE_COUNT --min-gap-ms 10 --max-gap-ms 200"
python3 "$BENCH_DIR/pickup.py" --count "$IDLE_COUNT" --min-gap-ms 10 --max-gap-ms 200 --label idle
echo "tasks by status: $(psql_bench -Atc "SELECT string_agg(status || '=' || n, ' ') FROM (SELECT status, count(*) n FROM tasks GROUP BY 1) s")"
