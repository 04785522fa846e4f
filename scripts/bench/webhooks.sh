#!/usr/bin/env bash
# Issue 12's payment webhook figures: (a) accept rate of POST /payments/webhook/stripe — the
# Stripe-Signature verified on the raw body, the event stored, its `payment_webhook` task
# committed — by the api alone (release, no worker); then (b) `payment_webhook` processing by
# one worker process: the events just accepted applied to their payments, each succeeded
# payment writing its organizer's ledger entry in the task's completing transaction.
#
#   scripts/bench/webhooks.sh [CONNECTIONS]          default 64
#
# Every request is a different event, signed beforehand by Python's hmac (the signatures are
# not computed by the code under test), one payment per event, pre-inserted as `pending`,
# spread over ORGANIZERS organizers (default 1,000: one organizer's payments serialize on its
# roll-up row, as its ledger must; ORGANIZERS=1 measures that case). The warm-up sends
# events of their own (other payments), so every measured request is a new event. Targets:
# accept >= 3,000/s with p99 <= 20 ms; processing >= 1,000/s per worker process.
# Env: DURATION (s, default 15), WARMUP (s, default 3), THREADS (default 2), EVENTS (signed
# events written, default 150000), WORKER_CONCURRENCY (default 64), ORGANIZERS (default 1000).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need wrk psql redis-cli curl python3
check_binaries

C=${1:-64}
DURATION=${DURATION:-15}
WARMUP=${WARMUP:-3}
THREADS=${THREADS:-2}
EVENTS=${EVENTS:-150000}
SECRET=whsec_bench_taquilla
ORGANIZERS=${ORGANIZERS:-1000}
EVENTS_FILE=$LOG_DIR/webhook-events.tsv
WARM_FILE=$LOG_DIR/webhook-warmup.tsv
export WRK_THREADS=$THREADS

machine_info
say "webhooks: fresh database, $EVENTS pending payments over $ORGANIZERS organizers, signed events"
reset_db
reset_redis
load_demo_data
psql_bench -c "INSERT INTO organizers (id, name) SELECT 'org_' || g, 'Organizer ' || g
    FROM generate_series(1, $ORGANIZERS) g ON CONFLICT DO NOTHING;
  INSERT INTO payments (id, requester, provider, provider_ref, organizer_id,
    amount_cents, currency, status)
  SELECT gen_random_uuid(), 'bench', 'stripe', p || i, 'org_' || (i % $ORGANIZERS + 1), 1000, 'MXN', 'pending'
  FROM generate_series(0, $EVENTS - 1) AS i, (VALUES ('pi_bench_'), ('pi_warm_')) AS v(p);
  ANALYZE payments;" >/dev/null
# Signed now: Stripe's tolerance (raised to 15 min here) counts from these timestamps.
python3 - "$SECRET" "$EVENTS" "$EVENTS_FILE" "$WARM_FILE" <<'PY'
import hashlib, hmac, json, sys, time
secret, n = sys.argv[1].encode(), int(sys.argv[2])
t = int(time.time())
for out, tag in ((sys.argv[3], "bench"), (sys.argv[4], "warm")):
    with open(out, "w") as f:
        for i in range(n):
            body = json.dumps({"id": f"evt_{tag}_{i}", "object": "event",
                               "type": "payment_intent.succeeded",
                               "data": {"object": {"id": f"pi_{tag}_{i}", "object": "payment_intent",
                                                   "amount": 1000, "currency": "mxn",
                                                   "status": "succeeded"}}},
                              separators=(",", ":"))
            sig = hmac.new(secret, f"{t}.{body}".encode(), hashlib.sha256).hexdigest()
            f.write(f"t={t},v1={sig}\t{body}\n")
PY
start_api STRIPE_WEBHOOK_SECRET=$SECRET STRIPE_WEBHOOK_TOLERANCE_SECONDS=900

say "(a) accept: wrk -t$THREADS -c$C, ${WARMUP}s warm-up then ${DURATION}s"
WEBHOOK_EVENTS=$WARM_FILE wrk -t"$THREADS" -c"$C" -d"${WARMUP}s" -s "$BENCH_DIR/webhook.lua" "$API_URL" >/dev/null
before=$(psql_bench -Atc "SELECT count(*) FROM payment_events")
python3 "$BENCH_DIR/cpu_by_process.py" snap "$LOG_DIR/webhooks.cpu.json"
out=$(WEBHOOK_EVENTS=$EVENTS_FILE timeout $((DURATION + 30)) wrk -t"$THREADS" -c"$C" -d"${DURATION}s" --timeout 5s --latency \
  -s "$BENCH_DIR/webhook.lua" "$API_URL")
echo "$out"
python3 "$BENCH_DIR/cpu_by_process.py" diff "$LOG_DIR/webhooks.cpu.json" "$DURATION"
stored=$(psql_bench -Atc "SELECT count(*) FROM payment_events")
tasks=$(psql_bench -Atc "SELECT count(*) FROM tasks WHERE kind = 'payment_webhook'")
result=$(grep '^RESULT' <<<"$out")
requests=$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$result")
echo "WEBHOOK_ACCEPT c=$C ${result#RESULT } events_stored_in_run=$((stored - before)) duplicates_in_run=$((requests - (stored - before))) events_stored_total=$stored tasks_total=$tasks"
[ "$stored" = "$tasks" ] || die "$stored events stored but $tasks payment_webhook tasks"
stop_started "$API_PID"

say "(b) processing: one worker (queue webhooks, concurrency ${WORKER_CONCURRENCY:-64}) applies $tasks events"
python3 "$BENCH_DIR/cpu_by_process.py" snap "$LOG_DIR/webhooks-worker.cpu.json"
t0=$(date +%s.%N)
start_worker WORKER_QUEUES=webhooks WORKER_CONCURRENCY="${WORKER_CONCURRENCY:-64}"
for ((i = 0; i < 600; i++)); do
  left=$(psql_bench -Atc "SELECT count(*) FROM tasks WHERE kind = 'payment_webhook'
                          AND status NOT IN ('completed', 'failed', 'dead', 'cancelled')")
  [ "$left" = 0 ] && break
  kill -0 "$WORKER_PID" 2>/dev/null || die "worker exited (see $LOG_DIR)"
  sleep 0.5
done
[ "$left" = 0 ] || die "$left payment_webhook tasks still unfinished after 300 s"
python3 "$BENCH_DIR/cpu_by_process.py" diff "$LOG_DIR/webhooks-worker.cpu.json" \
  "$(python3 -c "import time; print(time.time() - $t0)")"
psql_bench -Atc "
  SELECT 'WEBHOOK_PROCESS tasks=' || count(*)
      || ' completed=' || count(*) FILTER (WHERE status = 'completed')
      || ' seconds=' || round(extract(epoch FROM max(finished_at) - min(started_at))::numeric, 2)
      || ' rate_per_s=' || round((count(*) / nullif(extract(epoch FROM max(finished_at) - min(started_at)), 0))::numeric, 0)
  FROM tasks WHERE kind = 'payment_webhook'"
psql_bench -Atc "
  SELECT 'WEBHOOK_EFFECTS payments_succeeded=' || (SELECT count(*) FROM payments WHERE status = 'succeeded')
      || ' ledger_payment_entries=' || (SELECT count(*) FROM director_ledger_entries WHERE entry_type = 'payment')
      || ' events_applied=' || (SELECT count(*) FROM payment_events WHERE applied_at IS NOT NULL)"
