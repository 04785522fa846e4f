# shellcheck shell=bash
# Shared helpers of the benchmark scripts (sourced, not run). Everything runs on this
# machine: a dedicated database (taquilla_bench, dropped and created per run), the Redis key
# prefix `bench` (its keys deleted per run), release binaries, load sent to 127.0.0.1 only.
#
# Overridable: TAQUILLA_BIN_DIR (default $HOME/.cache/taquilla/target/release),
# BENCH_PG_ADMIN_URL, BENCH_DB, BENCH_REDIS_HOST/PORT, BENCH_PORT, BENCH_LOG_DIR.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The wrk scripts dofile() their shared parts from here.
export BENCH_DIR
ROOT=$(cd "$BENCH_DIR/../.." && pwd)

BIN_DIR=${TAQUILLA_BIN_DIR:-$HOME/.cache/taquilla/target/release}
export TAQUILLA_BIN_DIR=$BIN_DIR
PG_ADMIN_URL=${BENCH_PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
BENCH_DB=${BENCH_DB:-taquilla_bench}
REDIS_HOST=${BENCH_REDIS_HOST:-127.0.0.1}
REDIS_PORT=${BENCH_REDIS_PORT:-6379}
LOG_DIR=${BENCH_LOG_DIR:-$ROOT/var/bench}

export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$BENCH_DB"
export REDIS_URL="redis://$REDIS_HOST:$REDIS_PORT"
export REDIS_PREFIX=bench
export RUST_LOG=${BENCH_RUST_LOG:-warn}
export LOG_FORMAT=text
# Benchmarks run the laptop configuration: short bench token, unsigned webhooks.
export TAQUILLA_ENV=development
export API_TOKENS="bench-token-1:bench"
export HOST=127.0.0.1
export PORT=${BENCH_PORT:-18473}
export BENCH_TOKEN=bench-token-1
API_URL="http://127.0.0.1:$PORT"

mkdir -p "$LOG_DIR"

# Processes started by this script, stopped by `bench_cleanup` (trap EXIT).
BENCH_PIDS=()

say() { printf '==> %s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

psql_admin() { psql "$PG_ADMIN_URL" -X -q -v ON_ERROR_STOP=1 "$@"; }
psql_bench() { psql "$DATABASE_URL" -X -q -v ON_ERROR_STOP=1 "$@"; }
rcli() { redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" "$@"; }

need() {
  local cmd
  for cmd in "$@"; do
    command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' not found (see scripts/bench/README.md)"
  done
}

check_binaries() {
  if [ ! -x "$BIN_DIR/api" ] || [ ! -x "$BIN_DIR/worker" ]; then
    die "release binaries not found in $BIN_DIR: run CARGO_TARGET_DIR=\$HOME/.cache/taquilla/target cargo build --release -p taquilla-api -p taquilla-worker"
  fi
}

# Stops one process we started: SIGTERM, then SIGKILL after $2 seconds (default 15).
stop_pid() {
  local pid=$1 patience=${2:-15} i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < patience * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

bench_cleanup() {
  local pid
  # Ends drain.sh's pg_stat_activity sampler loop, if one runs.
  rm -f "$LOG_DIR"/*.sampling
  for pid in "${BENCH_PIDS[@]}"; do
    stop_pid "$pid" 15
  done
  BENCH_PIDS=()
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

# Removes `pid` from BENCH_PIDS after stopping it.
stop_started() {
  local pid=$1 p keep=()
  stop_pid "$pid" "${2:-15}"
  for p in "${BENCH_PIDS[@]}"; do
    [ "$p" = "$pid" ] || keep+=("$p")
  done
  BENCH_PIDS=("${keep[@]}")
}

# Fresh database with the migrations applied (the worker binary embeds them).
reset_db() {
  psql_admin -c "DROP DATABASE IF EXISTS $BENCH_DB WITH (FORCE)" >/dev/null
  psql_admin -c "CREATE DATABASE $BENCH_DB" >/dev/null
  "$BIN_DIR/worker" migrate >>"$LOG_DIR/migrate.log" 2>&1 || die "migrations failed (see $LOG_DIR/migrate.log)"
}

# Deletes every key of the `bench` prefix (apalis queues `bench.<queue>…`, `bench:task:…`).
reset_redis() {
  rcli --scan --pattern 'bench*' | xargs -r -n 500 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" DEL >/dev/null
}

# scripts/demo-data.sql when it loads against these binaries' schema; in any case org_demo
# and ev_demo (the only rows the benchmarks need) exist afterwards.
load_demo_data() {
  if [ -f "$ROOT/scripts/demo-data.sql" ] &&
    ! psql_bench -f "$ROOT/scripts/demo-data.sql" >/dev/null 2>"$LOG_DIR/demo-data.err"; then
    say "scripts/demo-data.sql did not load fully ($(head -1 "$LOG_DIR/demo-data.err")); inserting org_demo/ev_demo"
  fi
  psql_bench -c "INSERT INTO organizers (id, name) VALUES ('org_demo', 'Demo Organizer') ON CONFLICT DO NOTHING;
    INSERT INTO events (id, organizer_id, name) VALUES ('ev_demo', 'org_demo', 'Demo Fest') ON CONFLICT DO NOTHING;" >/dev/null
}

# Starts the api in the background (extra env as NAME=VALUE arguments); waits for /healthz.
start_api() {
  local log="$LOG_DIR/api.log" i
  if [ -n "$(ss -ltnH "sport = :$PORT" 2>/dev/null)" ]; then
    die "port $PORT is already taken by another process: set BENCH_PORT"
  fi
  env "$@" "$BIN_DIR/api" >"$log" 2>&1 &
  API_PID=$!
  BENCH_PIDS+=("$API_PID")
  for ((i = 0; i < 200; i++)); do
    if curl -fsS -o /dev/null "$API_URL/healthz" 2>/dev/null; then
      ss -ltnpH "sport = :$PORT" | grep -q "pid=$API_PID," || die "port $PORT answers, but not from our api"
      return 0
    fi
    kill -0 "$API_PID" 2>/dev/null || die "api exited at start (see $log)"
    sleep 0.05
  done
  die "api not healthy after 10 s (see $log)"
}

# Starts one worker process (extra env as NAME=VALUE arguments); sets WORKER_PID.
start_worker() {
  local n=${#BENCH_PIDS[@]}
  env "$@" "$BIN_DIR/worker" run >"$LOG_DIR/worker-$n.log" 2>&1 &
  WORKER_PID=$!
  BENCH_PIDS+=("$WORKER_PID")
}

machine_info() {
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "nproc: $(nproc)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "memory: $(free -g | awk '/^Mem:/ {print $2 " GiB total, " $7 " GiB available"}')"
  echo "postgres: $(psql_admin -Atc 'SHOW server_version')"
  echo "redis: $(rcli INFO server | tr -d '\r' | awk -F: '/^redis_version/ {print $2}')"
  echo "binaries: $BIN_DIR (built $(date -u -r "$BIN_DIR/worker" +%Y-%m-%dT%H:%M:%SZ))"
  echo "commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (+ uncommitted changes)')"
}

# perf across all CPUs (PROFILE=1 runs). perf's default event (cycles) is not supported in
# this VM; the cpu-clock software event is. perf_start FILE SECONDS sets PERF_PID.
perf_start() {
  perf record -e cpu-clock -F 499 -a -g -o "$1" -- sleep "$2" >/dev/null 2>&1 &
  PERF_PID=$!
  BENCH_PIDS+=("$PERF_PID")
  sleep 0.3
}

perf_stop() {
  kill -INT "$PERF_PID" 2>/dev/null || true
  stop_started "$PERF_PID" 20
}

# Share of samples by process name, then the top symbols (full list in FILE.sym.txt).
perf_summary() {
  local data=$1 lines=${2:-25}
  perf report -i "$data" --no-children --sort comm --stdio -g none >"$data.comm.txt" 2>/dev/null || true
  perf report -i "$data" --no-children --sort comm,dso,sym --stdio -g none >"$data.sym.txt" 2>/dev/null || true
  echo "--- perf (cpu-clock, all CPUs; 'swapper' = idle): share of samples by process"
  grep -v '^#' "$data.comm.txt" | grep -v '^$' | sed -n 1,10p || true
  echo "--- top symbols ($data.sym.txt)"
  grep -v '^#' "$data.sym.txt" | grep -v '^$' | sed -n "1,${lines}p" || true
}
