#!/usr/bin/env bash
# Runs the whole taquilla stack on this machine: Postgres and Redis (installed from the OS
# packages and started when missing), the migrations, the demo data, the api and WORKERS
# workers (default 1). Ctrl-C stops everything.
#
#   scripts/dev.sh [--release]
#
# Configuration: .env when present, otherwise the defaults of .env.example; variables already
# set in the environment win. TAQUILLA_ENV is development here (demo tokens, open webhook and
# /metrics) unless the environment or .env sets it. Logs: var/log/api.log, var/log/worker-N.log.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
# shellcheck source=scripts/lib/services.sh
source scripts/lib/services.sh

say() { printf '==> %s\n' "$*"; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

release=0
for arg in "$@"; do
  case $arg in
    --release) release=1 ;;
    -h | --help)
      sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *) die "unknown argument '$arg' (usage: scripts/dev.sh [--release])" ;;
  esac
done

# Exports the KEY=VALUE lines of a dotenv file, skipping keys already set in the environment.
# Values are taken literally (no command or variable expansion); surrounding quotes are removed.
load_env_file() {
  local file=$1 line key value
  while IFS= read -r line || [ -n "$line" ]; do
    line=${line%$'\r'}
    line=${line#"${line%%[![:space:]]*}"}
    case $line in '' | '#'*) continue ;; esac
    line=${line#export }
    case $line in *=*) ;; *) continue ;; esac
    key=${line%%=*}
    key=${key%"${key##*[![:space:]]}"}
    value=${line#*=}
    value=${value#"${value%%[![:space:]]*}"}
    [[ $key =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
    if [ -n "${!key+x}" ]; then continue; fi
    case $value in
      \"*\") value=${value:1:${#value}-2} ;;
      \'*\') value=${value:1:${#value}-2} ;;
      *)
        value=${value%%[[:space:]]#*}
        value=${value%"${value##*[![:space:]]}"}
        ;;
    esac
    export "$key=$value"
  done <"$file"
}

if [ -f .env ]; then
  say "loading .env"
  load_env_file .env
elif [ -f .env.example ]; then
  load_env_file .env.example
fi
# The laptop flow runs in development unless the environment or .env says otherwise
# (the binaries alone default to production).
export TAQUILLA_ENV=${TAQUILLA_ENV:-development}
export DATABASE_URL=${DATABASE_URL:-$TAQUILLA_DEFAULT_DATABASE_URL}
export REDIS_URL=${REDIS_URL:-$TAQUILLA_DEFAULT_REDIS_URL}
PORT=${PORT:-8080}
export PORT
WORKERS=${WORKERS:-1}
[[ $WORKERS =~ ^[1-9][0-9]*$ ]] || die "WORKERS must be a positive integer, not '$WORKERS'"

# Rust first: no point installing services on a machine that cannot build.
if ! command -v cargo >/dev/null 2>&1 && [ -x "${HOME:-}/.cargo/bin/cargo" ]; then
  PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
  cat >&2 <<'EOF'
error: cargo was not found. Install Rust with rustup (https://rustup.rs):

    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh
    . "$HOME/.cargo/env"

then run scripts/dev.sh again.
EOF
  exit 1
fi

# Something already on the port (an api left running, say) would answer /readyz for us.
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  die "port $PORT is already in use; stop what listens there or set PORT"
fi

say "checking Postgres and Redis"
ensure_postgres
ensure_database "$DATABASE_URL"
ensure_redis
ensure_build_tools

if [ -z "${CARGO_TARGET_DIR:-}" ]; then
  CARGO_TARGET_DIR="${HOME:-$ROOT}/.cache/taquilla/target"
fi
case $CARGO_TARGET_DIR in /*) ;; *) CARGO_TARGET_DIR="$ROOT/$CARGO_TARGET_DIR" ;; esac
export CARGO_TARGET_DIR

build=(build -p taquilla-api -p taquilla-worker)
profile=debug
if [ "$release" = 1 ]; then
  build+=(--release)
  profile=release
fi
say "cargo ${build[*]} (target dir $CARGO_TARGET_DIR)"
cargo "${build[@]}"
bin="$CARGO_TARGET_DIR/$profile"
for b in api worker; do
  [ -x "$bin/$b" ] || die "built, but $bin/$b is missing"
done

say "applying migrations"
"$bin/worker" migrate

say "loading scripts/demo-data.sql"
psql "$DATABASE_URL" -X -q -v ON_ERROR_STOP=1 -f scripts/demo-data.sql >/dev/null

mkdir -p var/log
pids=()
names=()
logs=()
start() { # name log command...
  local name=$1 log=$2
  shift 2
  # NO_COLOR: plain text in the log files (unless the caller chose otherwise).
  NO_COLOR=${NO_COLOR:-1} "$@" >"$log" 2>&1 &
  pids+=("$!")
  names+=("$name")
  logs+=("$log")
}

stopped=0
stop_all() {
  [ "$stopped" = 1 ] && return 0
  stopped=1
  [ "${#pids[@]}" -gt 0 ] || return 0
  say "stopping (SIGTERM)"
  local pid i alive deadline
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  deadline=$((SECONDS + ${WORKER_SHUTDOWN_TIMEOUT_SECONDS:-25} + 10))
  while :; do
    alive=()
    for i in "${!pids[@]}"; do
      if kill -0 "${pids[$i]}" 2>/dev/null; then alive+=("$i"); fi
    done
    [ "${#alive[@]}" -eq 0 ] && break
    if [ "$SECONDS" -ge "$deadline" ]; then
      for i in "${alive[@]}"; do
        printf 'warning: %s (pid %s) did not stop in time: SIGKILL\n' "${names[$i]}" "${pids[$i]}" >&2
        kill -KILL "${pids[$i]}" 2>/dev/null || true
      done
      break
    fi
    sleep 0.2
  done
  wait 2>/dev/null || true
  say "stopped"
}
trap stop_all EXIT
trap 'exit 0' INT TERM

show_log() {
  printf -- '--- last lines of %s ---\n' "$1" >&2
  tail -n 40 "$1" >&2 2>/dev/null || true
}

say "starting api and $WORKERS worker(s) (logs in var/log/)"
start api var/log/api.log "$bin/api"
for ((n = 1; n <= WORKERS; n++)); do
  start "worker-$n" "var/log/worker-$n.log" "$bin/worker"
done

http_status() { # URL -> HTTP status code, or 000
  if command -v curl >/dev/null 2>&1; then
    curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" 2>/dev/null || true
  else
    local rest=${1#http://} hostport path
    hostport=${rest%%/*}
    path=/${rest#*/}
    # shellcheck disable=SC2016 # expanded by the inner bash
    timeout 3 bash -c 'exec 3<>"/dev/tcp/${1%:*}/${1##*:}" || exit 1
      printf "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" "$2" "$1" >&3
      IFS=" " read -r _ code _ <&3 && printf %s "$code"' _ "$hostport" "$path" 2>/dev/null || true
  fi
}

ready_url="http://127.0.0.1:$PORT/readyz"
say "waiting for $ready_url"
deadline=$((SECONDS + 60))
until [ "$(http_status "$ready_url")" = 200 ]; do
  for i in "${!pids[@]}"; do
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      printf 'error: %s exited during start-up\n' "${names[$i]}" >&2
      show_log "${logs[$i]}"
      exit 1
    fi
  done
  if [ "$SECONDS" -ge "$deadline" ]; then
    printf 'error: %s did not answer 200 within 60 s\n' "$ready_url" >&2
    show_log var/log/api.log
    exit 1
  fi
  sleep 0.5
done

base="http://127.0.0.1:$PORT"
cat <<EOF

taquilla is running
  api      $base   (log: var/log/api.log)
  workers  $WORKERS   (logs: var/log/worker-*.log)
  token    demo-token   (requester "demo"; admin-token is the operator)

Try the seed's flow:
  curl -sS -X POST $base/director/assign \\
    -H "Authorization: Bearer demo-token" \\
    -H "Content-Type: application/json" \\
    -d '{"organizerId":"org_demo","eventId":"ev_demo","type":"prepaid","tickets":100,"price":3.5}'
  curl -sS $base/tasks/<taskId> -H "Authorization: Bearer demo-token"

Ctrl-C stops everything.
EOF
case ",${API_TOKENS:-demo-token:demo}," in
  *,demo-token:*) ;;
  *) echo "note: API_TOKENS is set and has no demo-token; use one of your own tokens" ;;
esac

# Runs until Ctrl-C/SIGTERM (the trap exits 0 and stops everything) or until a process dies.
while :; do
  status=0
  wait -n || status=$?
  for i in "${!pids[@]}"; do
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      printf 'error: %s exited (status %s); stopping the others\n' "${names[$i]}" "$status" >&2
      show_log "${logs[$i]}"
      exit 1
    fi
  done
done
