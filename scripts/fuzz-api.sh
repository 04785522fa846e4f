#!/usr/bin/env bash
# Fuzzes the running api against its own OpenAPI document with schemathesis (every check on),
# once with a requester token and once with an admin token. The bar: no server error and no
# disagreement between the document and the server. Called by scripts/test.sh; runs alone too:
#
#   scripts/fuzz-api.sh [extra schemathesis arguments...]
#
# It builds the debug api and worker, starts them against a database of its own
# (taquilla_fuzz, recreated each run) and a Redis prefix of its own, and stops them at the end.
# FUZZ_MAX_EXAMPLES (default 50 generated cases per operation and phase) and FUZZ_MAX_SECONDS
# (default 300 per token, a hard stop) bound the run; FUZZ_PORT (default 18080) is where the
# api listens. Operations whose rules a schema cannot state are listed, with the reason, in
# scripts/fuzz/schemathesis.toml.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
# shellcheck source=scripts/lib/services.sh
source scripts/lib/services.sh

say() { printf '[fuzz] %s\n' "$*" >&2; }

if [ -z "${CARGO_TARGET_DIR:-}" ]; then
  CARGO_TARGET_DIR="${HOME:-$ROOT}/.cache/taquilla/target"
fi
case $CARGO_TARGET_DIR in /*) ;; *) CARGO_TARGET_DIR="$ROOT/$CARGO_TARGET_DIR" ;; esac
export CARGO_TARGET_DIR

port=${FUZZ_PORT:-18080}
max_examples=${FUZZ_MAX_EXAMPLES:-50}
max_seconds=${FUZZ_MAX_SECONDS:-300}
base_db=${TEST_DATABASE_URL:-$TAQUILLA_DEFAULT_DATABASE_URL}
db_url="${base_db%/*}/taquilla_fuzz"
redis_url=${TEST_REDIS_URL:-${REDIS_URL:-$TAQUILLA_DEFAULT_REDIS_URL}}
work=$(mktemp -d "${TMPDIR:-/tmp}/taquilla-fuzz.XXXXXX")

ensure_tools_venv
ensure_schemathesis

say "building the api and the worker"
cargo build -q -p taquilla-api -p taquilla-worker
bin="$CARGO_TARGET_DIR/debug"

# A fresh database each run, so earlier runs' rows (and their idempotency keys) change nothing.
admin_url="${base_db%/*}/postgres"
psql "$admin_url" -X -q -v ON_ERROR_STOP=1 -c 'DROP DATABASE IF EXISTS taquilla_fuzz WITH (FORCE)' \
  -c 'CREATE DATABASE taquilla_fuzz' >/dev/null

export TAQUILLA_ENV=development
export DATABASE_URL=$db_url REDIS_URL=$redis_url REDIS_PREFIX="fuzz$$"
export PORT=$port HOST=127.0.0.1
export API_TOKENS="fuzz-requester-token:fuzzer,fuzz-admin-token:fuzzops:admin"
export OUTBOX_DIR=$work/outbox EXPORT_DIR=$work/exports
export WA_WEBHOOK_SECRET= WA_APP_SECRET=
export WORKER_SHUTDOWN_TIMEOUT_SECONDS=5 NO_COLOR=1
unset S3_BUCKET SMTP_URL WHATSAPP_API_KEY

"$bin/worker" migrate >"$work/migrate.log" 2>&1 || { cat "$work/migrate.log" >&2; exit 1; }
psql "$db_url" -X -q -v ON_ERROR_STOP=1 -f scripts/demo-data.sql >/dev/null

pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  redis-cli -u "$redis_url" --scan --pattern "fuzz$$*" 2>/dev/null |
    xargs -r -n 500 redis-cli -u "$redis_url" DEL >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

"$bin/api" >"$work/api.log" 2>&1 &
pids+=("$!")
"$bin/worker" >"$work/worker.log" 2>&1 &
pids+=("$!")

deadline=$((SECONDS + 60))
until curl -sf -o /dev/null -m 2 "http://127.0.0.1:$port/readyz"; do
  if [ "$SECONDS" -ge "$deadline" ] || ! kill -0 "${pids[0]}" 2>/dev/null; then
    say "the api did not become ready"
    tail -n 40 "$work/api.log" >&2
    exit 1
  fi
  sleep 0.3
done

status=0
for token in fuzz-requester-token fuzz-admin-token; do
  say "schemathesis with $token (at most $max_examples cases per operation, ${max_seconds}s)"
  # From the scratch folder: schemathesis keeps a cache folder where it runs.
  if ! (cd "$work" && timeout "$max_seconds" "$TAQUILLA_TOOLS_VENV/bin/schemathesis" \
    --config-file "$ROOT/scripts/fuzz/schemathesis.toml" run "http://127.0.0.1:$port/openapi.json" \
    --url "http://127.0.0.1:$port" \
    --checks all \
    --header "Authorization: Bearer $token" \
    --max-examples "$max_examples" \
    --phases examples,coverage,fuzzing \
    --seed 20261201 \
    --workers 1 \
    --request-timeout 20 \
    --generation-database none \
    --no-color \
    "$@"); then
    status=1
  fi
done

if grep -q -i 'panicked' "$work/api.log" "$work/worker.log"; then
  say "a process panicked during the run:"
  grep -i -A5 'panicked' "$work/api.log" "$work/worker.log" | head -40 >&2
  status=1
fi
if [ "$status" != 0 ]; then
  say "last lines of the api log:"
  tail -n 30 "$work/api.log" >&2
fi
exit "$status"
