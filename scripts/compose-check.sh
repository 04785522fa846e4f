#!/usr/bin/env bash
# Runs the container stack of docker-compose.yml for real and checks it end to end:
#   1. builds every image without a registry (deploy/docker/build-images.sh);
#   2. `up` with three workers, on 127.0.0.1 ports of its own (below), with throwaway secrets;
#   3. the seed flows over HTTP: assignment, ledger, payment (ledger and a mock-provider
#      intent), reports, an export whose link is downloaded, e-mails caught by the SMTP sink;
#   4. a load of assignments during which one worker container is SIGKILLed: every task must
#      complete exactly once (Postgres: statuses, one ledger entry per task, the balance);
#   5. a graceful stop of another worker (exit 0), then `down -v` (the images stay).
# Bounded (COMPOSE_CHECK_TIMEOUT seconds, default 1800), stops by itself, exits non-zero on
# the first failure with the services' last log lines. Not part of scripts/test.sh or CI.
#
#   scripts/compose-check.sh               KEEP_STACK=1 leaves the stack up on failure
#   LOAD_TASKS=5000 scripts/compose-check.sh
#
# Needs Linux, a running Docker engine (host networking), `docker compose` or `docker-compose`,
# curl and python3. Ports (all on 127.0.0.1, override with the variables): api 28080,
# Postgres 25432, Redis 26379, S3 29100-29107, SMTP 22525; it refuses to start when one is
# taken, so it never touches a Postgres or Redis already running here.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
T0=$(date +%s)
LIMIT=${COMPOSE_CHECK_TIMEOUT:-1800}
LOAD_TASKS=${LOAD_TASKS:-3000}
PROJECT=${COMPOSE_CHECK_PROJECT:-taquilla-check}
export TAQUILLA_API_PORT=${TAQUILLA_API_PORT:-28080}
export TAQUILLA_POSTGRES_PORT=${TAQUILLA_POSTGRES_PORT:-25432}
export TAQUILLA_REDIS_PORT=${TAQUILLA_REDIS_PORT:-26379}
export TAQUILLA_S3_PORT=${TAQUILLA_S3_PORT:-29100}
export TAQUILLA_SMTP_PORT=${TAQUILLA_SMTP_PORT:-22525}
API=http://127.0.0.1:$TAQUILLA_API_PORT

step() { printf '\n==> [%4ss] %s\n' "$(($(date +%s) - T0))" "$*"; }
note() { printf '    %s\n' "$*"; }
FAILED=0
fail() {
  FAILED=1
  printf '\nFAIL: %s\n' "$*" >&2
  exit 1
}

if docker compose version >/dev/null 2>&1; then
  DC_BIN=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  DC_BIN=(docker-compose)
else
  fail "neither 'docker compose' nor 'docker-compose' is installed (apt-get install docker-compose)"
fi
for tool in docker curl python3; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is not installed"
done
docker info >/dev/null 2>&1 || fail "no Docker engine answers (README, 'Docker')"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/taquilla-compose-check.XXXXXX")
ENV_FILE=$WORK/stack.env
dc() { "${DC_BIN[@]}" -p "$PROJECT" --env-file "$ENV_FILE" -f "$ROOT/docker-compose.yml" "$@"; }

STACK_UP=0
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "$STACK_UP" = 1 ]; then
    if [ "$rc" != 0 ] || [ "$FAILED" = 1 ]; then
      echo "---- last log lines of each service ----" >&2
      timeout 30 "${DC_BIN[@]}" -p "$PROJECT" --env-file "$ENV_FILE" -f "$ROOT/docker-compose.yml" \
        logs --no-color --tail 15 >&2 2>&1 || true
    fi
    if [ "${KEEP_STACK:-0}" = 1 ] && [ "$rc" != 0 ]; then
      echo "KEEP_STACK=1: the stack stays up (project $PROJECT, env file $ENV_FILE)" >&2
      exit "$rc"
    fi
    step "down -v (containers, network state and volumes of $PROJECT; images stay)"
    timeout 120 "${DC_BIN[@]}" -p "$PROJECT" --env-file "$ENV_FILE" -f "$ROOT/docker-compose.yml" \
      down -v --remove-orphans >/dev/null 2>&1 || echo "warning: down failed" >&2
  fi
  rm -rf "$WORK"
  if [ -n "${WATCHDOG:-}" ]; then # the watchdog subshell and its sleep
    pkill -P "$WATCHDOG" 2>/dev/null || true
    kill "$WATCHDOG" 2>/dev/null || true
  fi
  printf '\ncompose-check: %s after %ss\n' "$([ "$rc" = 0 ] && echo passed || echo FAILED)" \
    "$(($(date +%s) - T0))"
  exit "$rc"
}
trap cleanup EXIT
trap 'fail "interrupted or over the time limit of ${LIMIT}s (COMPOSE_CHECK_TIMEOUT)"' INT TERM
# The whole run is bounded: past LIMIT the watchdog stops it (cleanup still runs).
(sleep "$LIMIT" && kill -TERM $$) 2>/dev/null &
WATCHDOG=$!

# --- ports and throwaway secrets ----------------------------------------------------------
port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$TAQUILLA_API_PORT" "$TAQUILLA_POSTGRES_PORT" "$TAQUILLA_REDIS_PORT" "$TAQUILLA_SMTP_PORT" \
  $(seq "$TAQUILLA_S3_PORT" $((TAQUILLA_S3_PORT + 7))); do
  port_taken "$p" && fail "127.0.0.1:$p is taken; choose other ports (TAQUILLA_*_PORT) or stop what uses it"
done
secret() { od -An -tx1 -N24 /dev/urandom | tr -d ' \n'; }
CLIENT_TOKEN=$(secret)
ADMIN_TOKEN=$(secret)
METRICS_TOKEN=$(secret)
umask 077
cat >"$ENV_FILE" <<EOF
TAQUILLA_ENV=development
POSTGRES_PASSWORD=$(secret)
REDIS_PASSWORD=$(secret)
S3_ACCESS_KEY_ID=$(secret)
S3_SECRET_ACCESS_KEY=$(secret)
API_TOKENS=$CLIENT_TOKEN:check,$ADMIN_TOKEN:check-ops:admin
METRICS_TOKEN=$METRICS_TOKEN
CONSOLE_SESSION_SECRET=$(secret)
TAQUILLA_API_PORT=$TAQUILLA_API_PORT
TAQUILLA_POSTGRES_PORT=$TAQUILLA_POSTGRES_PORT
TAQUILLA_REDIS_PORT=$TAQUILLA_REDIS_PORT
TAQUILLA_S3_PORT=$TAQUILLA_S3_PORT
TAQUILLA_SMTP_PORT=$TAQUILLA_SMTP_PORT
TAQUILLA_IMAGE=taquilla:local
TAQUILLA_POSTGRES_IMAGE=taquilla-postgres:local
TAQUILLA_REDIS_IMAGE=taquilla-redis:local
TAQUILLA_S3_IMAGE=taquilla-s3:local
TAQUILLA_SMTP_IMAGE=taquilla-smtp:local
EOF
umask 022

# --- helpers -------------------------------------------------------------------------------
# call METHOD PATH [JSON] [TOKEN]: sets CODE and BODY.
call() {
  local out
  out=$(curl -sS -m 30 -o "$WORK/body" -w '%{http_code}' -X "$1" "$API$2" \
    -H "Authorization: Bearer ${4:-$CLIENT_TOKEN}" -H 'Content-Type: application/json' \
    ${3:+--data "$3"}) || out=000
  CODE=$out
  BODY=$(cat "$WORK/body" 2>/dev/null || true)
}
expect() { # expect CODE WHAT
  [ "$CODE" = "$1" ] || fail "$2: HTTP $CODE (expected $1): $BODY"
}
# jget EXPR: a Python expression over the JSON body `d`.
jget() { printf '%s' "$BODY" | python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
sql() { dc exec -T postgres psql -qtAX -v ON_ERROR_STOP=1 -U postgres -d taquilla -c "$1"; }
# wait_task ID WHAT: long-polls the task until it ends; fails unless it completed.
wait_task() {
  local id=$1 status deadline=$((SECONDS + 120))
  while :; do
    call GET "/tasks/$id?wait=10"
    expect 200 "$2 (task $id)"
    status=$(jget 'd["status"]')
    case $status in
      completed) return 0 ;;
      failed | dead | cancelled) fail "$2: task $id ended $status: $BODY" ;;
    esac
    [ "$SECONDS" -lt "$deadline" ] || fail "$2: task $id still $status after 120 s"
  done
}
# enqueue METHOD PATH JSON WHAT: expects 202, sets TASK.
enqueue() {
  call "$1" "$2" "$3" "${5:-}"
  expect 202 "$4"
  TASK=$(jget 'd["taskId"]')
}
wait_for() { # wait_for SECONDS WHAT COMMAND...
  local limit=$1 what=$2
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || fail "$what: not within ${limit}s"
    sleep 1
  done
}
healthy_workers() {
  local n=0 c
  for c in $(dc ps -q worker); do
    [ "$(docker inspect -f '{{.State.Health.Status}}' "$c" 2>/dev/null)" = healthy ] && n=$((n + 1))
  done
  echo "$n"
}

# --- 1. images -----------------------------------------------------------------------------
step "images (deploy/docker/build-images.sh)"
t=$(date +%s)
bash deploy/docker/build-images.sh
note "images built in $(($(date +%s) - t))s"

# --- 2. up ---------------------------------------------------------------------------------
step "up --scale worker=3 (project $PROJECT, api $API)"
t=$(date +%s)
STACK_UP=1
dc up -d --no-build --scale worker=3 >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log" >&2; fail "compose up failed"; }
wait_for 120 "api ready at $API/readyz" curl -sf -o /dev/null "$API/readyz"
three_healthy() { [ "$(healthy_workers)" = 3 ]; }
wait_for 90 "three healthy workers" three_healthy
note "stack up and healthy in $(($(date +%s) - t))s"
dc exec -T postgres psql -q -v ON_ERROR_STOP=1 -U postgres -d taquilla <scripts/demo-data.sql >/dev/null ||
  fail "loading scripts/demo-data.sql"

# What one Redis carries (README, "Running past one machine"): its CPU and commands with the
# three workers idle, and later per task under load.
redis_info() { # prints "<cpu seconds> <commands processed>"
  dc exec -T redis sh -c 'redis-cli -h 127.0.0.1 -p "$REDIS_PORT" info all' | tr -d '\r' |
    awk -F: '/^used_cpu_(sys|user):/ {cpu += $2} /^total_commands_processed:/ {n = $2}
             END {printf "%.3f %d\n", cpu, n}'
}
read -r CPU0 CMD0 <<<"$(redis_info)"
sleep 10
read -r CPU1 CMD1 <<<"$(redis_info)"
note "Redis, 3 idle workers + api, over 10 s: $(((CMD1 - CMD0) / 10)) commands/s, $(python3 -c "print(round(($CPU1 - $CPU0) / 10 * 100, 2))") % of one core"

# --- 3. the seed flows ---------------------------------------------------------------------
step "flows: tokens from the environment"
call GET /director/organizers/org_demo/ledger "" demo-token
expect 401 "the demo token must be refused when API_TOKENS is set"
call GET /metrics "" "$METRICS_TOKEN"
expect 200 "GET /metrics"

step "flows: assignment, ledger, payment"
enqueue POST /director/assign \
  '{"organizerId":"org_demo","eventId":"ev_demo","type":"prepaid","tickets":100,"price":3.5}' "assign"
wait_task "$TASK" "assignment"
call GET "/tasks/$TASK/result"
expect 200 "assignment result"
[ "$(jget 'd["entry"]["amountCents"]')" = 35000 ] || fail "assignment entry: $BODY"
enqueue POST /director/payments '{"organizerId":"org_demo","amount":1500,"currency":"mxn"}' "payment"
wait_task "$TASK" "payment"
call GET /director/organizers/org_demo/ledger
expect 200 "ledger"
[ "$(jget 'len(d["data"])')" -ge 2 ] || fail "ledger has fewer than 2 entries: $BODY"
note "ledger: $(jget 'd["totals"]')"
enqueue POST /payments/intent '{"amount":1000,"currency":"mxn","provider":"mock"}' "payment intent"
wait_task "$TASK" "payment intent (mock provider)"
call GET "/tasks/$TASK/result"
PAYMENT=$(jget 'd["paymentId"]')
call GET "/payments/$PAYMENT"
expect 200 "GET /payments/$PAYMENT"
note "payment intent: $(jget 'd["provider"], d["status"]')"

step "flows: reports and a KPI refresh"
for r in overview top-organizers debt-aging tickets-usage; do
  call GET "/director/reports/$r?currency=MXN"
  expect 200 "GET /director/reports/$r"
done
enqueue POST /director/kpis/refresh '{}' "kpi refresh" "$ADMIN_TOKEN"
call GET "/tasks/$TASK?wait=30" "" "$ADMIN_TOKEN"
[ "$(jget 'd["status"]')" = completed ] || fail "kpi refresh: $BODY"

step "flows: export to S3, its link downloaded"
enqueue POST /director/reports/exports \
  '{"report":"ledger","format":"xlsx","organizerId":"org_demo","notifyEmails":["ana@example.com"]}' "export"
wait_task "$TASK" "export"
call GET "/director/reports/tasks/$TASK/result"
expect 200 "export result"
URL=$(jget 'd["url"]')
SIZE=$(jget 'd["sizeBytes"]')
curl -sSf -m 30 -o "$WORK/export.xlsx" "$URL" || fail "downloading the export link $URL"
[ "$(head -c 2 "$WORK/export.xlsx")" = PK ] || fail "the downloaded export is not an XLSX (zip) file"
[ "$(wc -c <"$WORK/export.xlsx")" = "$SIZE" ] || fail "downloaded $(wc -c <"$WORK/export.xlsx") bytes, result says $SIZE"
note "export: $SIZE bytes from ${URL%%\?*}"

step "flows: sends (e-mail into the SMTP sink, WhatsApp in mock mode)"
enqueue POST /events/ev_demo/guests/g2/send '{"channel":"email"}' "e-mail send"
wait_task "$TASK" "e-mail send"
enqueue POST /events/ev_demo/guests/g1/send '{"channel":"whatsapp"}' "whatsapp send"
wait_task "$TASK" "whatsapp send"
mail_has() { dc exec -T smtp sh -c "grep -rqs 'To: $1' /var/mail/sink/maildir/new /var/mail/sink/maildir/cur"; }
wait_for 30 "the sink holds the mail to beto@example.com" mail_has beto@example.com
wait_for 30 "the sink holds the export's mail to ana@example.com" mail_has ana@example.com
note "SMTP sink: $(dc exec -T smtp sh -c 'ls /var/mail/sink/maildir/new | wc -l') messages"

# --- 4. load, one worker SIGKILLed mid-load -----------------------------------------------
step "load: $LOAD_TASKS assignments, one worker container killed mid-load"
RUN=$(secret)
RUN=${RUN:0:8}
BEFORE=$(sql "SELECT coalesce(sum(amount_cents),0) FROM director_ledger_entries WHERE organizer_id='org_acme'")
cfg=$WORK/load.curl
# One curl, many transfers: `next` between them, so each keeps its own headers.
for i in $(seq 1 "$LOAD_TASKS"); do
  [ "$i" = 1 ] || echo next
  printf 'url = "%s/director/assign"\nheader = "Authorization: Bearer %s"\nheader = "Content-Type: application/json"\nheader = "Idempotency-Key: load-%s-%s"\ndata = "{\\"organizerId\\":\\"org_acme\\",\\"eventId\\":\\"ev_acme\\",\\"type\\":\\"loan\\",\\"tickets\\":1,\\"price\\":1}"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\nmax-time = 30\n' \
    "$API" "$CLIENT_TOKEN" "$RUN" "$i"
done >"$cfg"
VICTIM=$(dc ps -q worker | sed -n 1p)
# Its instance name, as the tasks' `worker` column holds it, from its start-up line (text
# logs may carry colour codes).
VICTIM_NAME=$(docker logs "$VICTIM" 2>&1 | sed 's/\x1b\[[0-9;]*m//g' |
  sed -n 's/.*worker starting.*worker=\([^ ]*\).*/\1/p' | sed -n 1p)
[ -n "$VICTIM_NAME" ] || fail "cannot read the victim worker's name from its log"
read -r CPUA CMDA <<<"$(redis_info)"
t=$(date +%s)
curl -sS --no-progress-meter -Z --parallel-max 16 -K "$cfg" >"$WORK/load.codes" 2>"$WORK/load.err" &
LOAD=$!
# Kill once the victim has claimed some of this load (so it dies with tasks in hand).
victim_busy() {
  [ "$(sql "SELECT count(*) FROM tasks WHERE worker LIKE '$VICTIM_NAME%' AND idempotency_key LIKE 'load-$RUN-%'")" -ge 20 ]
}
wait_for 60 "the victim worker takes part of the load" victim_busy
IN_HAND=$(sql "SELECT count(*) FROM tasks WHERE worker LIKE '$VICTIM_NAME%' AND status = 'running'")
docker kill "$VICTIM" >/dev/null
note "SIGKILLed worker $VICTIM_NAME after $(($(date +%s) - t))s, with $IN_HAND tasks running"
wait "$LOAD" || fail "the load's curl failed: $(tail -n 3 "$WORK/load.err")"
ACCEPTED=$(grep -c '^202$' "$WORK/load.codes" || true)
[ "$ACCEPTED" = "$LOAD_TASKS" ] || fail "$ACCEPTED of $LOAD_TASKS requests answered 202: $(sort "$WORK/load.codes" | uniq -c | tr '\n' ' ')"
note "$LOAD_TASKS requests accepted in $(($(date +%s) - t))s"
load_done() {
  [ "$(sql "SELECT count(*) FROM tasks WHERE idempotency_key LIKE 'load-$RUN-%' AND status NOT IN ('completed','failed','dead','cancelled')")" = 0 ]
}
wait_for 240 "every load task ends (a dead worker's leases expire after TASK_LEASE_SECONDS)" load_done
ELAPSED=$(($(date +%s) - t))
read -r CPUB CMDB <<<"$(redis_info)"
read -r COMPLETED OTHER RETRIED <<<"$(sql "SELECT count(*) FILTER (WHERE status='completed'), count(*) FILTER (WHERE status<>'completed'), count(*) FILTER (WHERE attempts > 1) FROM tasks WHERE idempotency_key LIKE 'load-$RUN-%'" | tr '|' ' ')"
[ "$COMPLETED" = "$LOAD_TASKS" ] && [ "$OTHER" = 0 ] || fail "load: $COMPLETED completed, $OTHER not completed"
ENTRIES=$(sql "SELECT count(*) FROM director_ledger_entries e JOIN tasks t ON t.id = e.task_id WHERE t.idempotency_key LIKE 'load-$RUN-%'")
[ "$ENTRIES" = "$LOAD_TASKS" ] || fail "load: $ENTRIES ledger entries for $LOAD_TASKS tasks"
AFTER=$(sql "SELECT coalesce(sum(amount_cents),0) FROM director_ledger_entries WHERE organizer_id='org_acme'")
[ $((AFTER - BEFORE)) = $((LOAD_TASKS * 100)) ] || fail "load: org_acme's ledger grew by $((AFTER - BEFORE)) cents, expected $((LOAD_TASKS * 100))"
BALANCE=$(sql "SELECT sum(assigned_cents) FROM organizer_balances WHERE organizer_id='org_acme'")
[ "$BALANCE" = "$AFTER" ] || fail "org_acme's balance ($BALANCE) differs from its ledger ($AFTER)"
note "all $LOAD_TASKS tasks completed once in ${ELAPSED}s (from the first request): $ENTRIES ledger entries, $RETRIED run again after the kill"
# Net of what the idle workers cost over the same time (measured above).
python3 - "$LOAD_TASKS" "$ELAPSED" "$CPU0" "$CMD0" "$CPU1" "$CMD1" "$CPUA" "$CMDA" "$CPUB" "$CMDB" <<'PY'
import sys
n, secs, c0, m0, c1, m1, ca, ma, cb, mb = map(float, sys.argv[1:])
idle_cpu, idle_cmd = (c1 - c0) / 10, (m1 - m0) / 10
cpu = (cb - ca - idle_cpu * secs) / n
cmd = (mb - ma - idle_cmd * secs) / n
print(f"    Redis per task (net of idle polling): {cmd:.1f} commands, {cpu * 1000:.3f} ms CPU"
      f" -> one Redis core: ~{1 / cpu:,.0f} tasks/s" if cpu > 0 else "    Redis per task: too small to measure")
PY
[ "$(healthy_workers)" -ge 2 ] || fail "the two surviving workers are not healthy"

# --- 5. a graceful stop --------------------------------------------------------------------
step "graceful stop of a surviving worker (SIGTERM, WORKER_SHUTDOWN_TIMEOUT_SECONDS=25)"
SURVIVOR=$(dc ps -q worker | while read -r c; do
  [ "$(docker inspect -f '{{.State.Running}}' "$c")" = true ] && echo "$c"
done | sed -n 1p)
t=$(date +%s)
docker stop -t 35 "$SURVIVOR" >/dev/null
CODE=$(docker inspect -f '{{.State.ExitCode}}' "$SURVIVOR")
[ "$CODE" = 0 ] || fail "the stopped worker exited $CODE (expected 0 within the grace period)"
note "stopped with exit code 0 in $(($(date +%s) - t))s"

step "passed: images, up, flows, kill, stop ($(($(date +%s) - T0))s so far)"
