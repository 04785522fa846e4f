#!/usr/bin/env python3
"""(c) Pickup latency: how long an accepted task waits before a worker starts it.

Sends COUNT `POST /director/assign` one after another with a random pause of MIN..MAX ms
between them (new connection each time), waits until every task has started, then asks
Postgres for `started_at - created_at` of exactly those tasks (p50, p90, p99, max with
percentile_cont). Both timestamps come from the database clock. Also reports the client's
request latency. Needs the api and a worker running (scripts/bench/pickup.sh starts them).

  pickup.py --count 2000 --min-gap-ms 2 --max-gap-ms 20
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request

BODY = json.dumps(
    {"organizerId": "org_demo", "eventId": "ev_demo", "type": "prepaid", "tickets": 1, "price": 3.5}
).encode()


def psql(database_url, sql, stdin=None):
    out = subprocess.run(
        ["psql", database_url, "-X", "-q", "-At", "-F", " ", "-v", "ON_ERROR_STOP=1", "-c", sql],
        input=stdin, capture_output=True, text=True, check=True,
    )
    return out.stdout.strip()


def pct(values, p):
    values = sorted(values)
    k = (len(values) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--min-gap-ms", type=float, default=2)
    ap.add_argument("--max-gap-ms", type=float, default=20)
    ap.add_argument("--url", default=os.environ.get("API_URL", "http://127.0.0.1:18473"))
    ap.add_argument("--token", default=os.environ.get("BENCH_TOKEN", "bench-token-1"))
    ap.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    ap.add_argument("--label", default="")
    ap.add_argument("--max-seconds", type=float, default=900, help="stop sending after this long")
    args = ap.parse_args()
    if not args.database_url:
        sys.exit("DATABASE_URL or --database-url is required")
    host = args.url.split("//", 1)[-1].split("/", 1)[0].split(":")[0]
    if host not in ("127.0.0.1", "localhost", "::1", "[::1]"):
        sys.exit("load goes to this machine only (127.0.0.1)")

    rng = random.Random(42)
    ids, client_ms, failures = [], [], 0
    started = time.monotonic()
    for i in range(args.count):
        if time.monotonic() - started > args.max_seconds:
            print(f"stopped after {args.max_seconds} s ({i} sent)", file=sys.stderr)
            break
        req = urllib.request.Request(
            args.url + "/director/assign", data=BODY, method="POST",
            headers={"Authorization": "Bearer " + args.token, "Content-Type": "application/json",
                     "Connection": "close"},
        )
        t = time.monotonic()
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                body = json.load(resp)
                if resp.status != 202:
                    failures += 1
                else:
                    ids.append(body["taskId"])
        except Exception as e:  # noqa: BLE001 - counted and reported
            failures += 1
            print(f"request {i} failed: {e}", file=sys.stderr)
        client_ms.append((time.monotonic() - t) * 1000)
        time.sleep(rng.uniform(args.min_gap_ms, args.max_gap_ms) / 1000)
    send_s = time.monotonic() - started

    with tempfile.NamedTemporaryFile("w", suffix=".ids", delete=False) as f:
        f.write("\n".join(ids) + "\n")
        ids_file = f.name
    table = "pickup_ids_" + str(os.getpid())
    psql(args.database_url, f"CREATE TABLE {table} (id uuid PRIMARY KEY)")
    try:
        psql(args.database_url, f"\\copy {table} FROM '{ids_file}'")
        deadline = time.monotonic() + 60
        while True:
            waiting = int(psql(args.database_url,
                f"SELECT count(*) FROM tasks t JOIN {table} USING (id) WHERE t.started_at IS NULL"))
            if waiting == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        row = psql(args.database_url, f"""
            WITH l AS (SELECT extract(epoch FROM t.started_at - t.created_at) * 1000 AS ms,
                              t.status
                       FROM tasks t JOIN {table} USING (id) WHERE t.started_at IS NOT NULL)
            SELECT count(*),
                   round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2),
                   round(percentile_cont(0.9) WITHIN GROUP (ORDER BY ms)::numeric, 2),
                   round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 2),
                   round(max(ms)::numeric, 2),
                   count(*) FILTER (WHERE ms > 1000),
                   count(*) FILTER (WHERE status = 'completed')
            FROM l""")
    finally:
        psql(args.database_url, f"DROP TABLE IF EXISTS {table}")
        os.unlink(ids_file)
    n, p50, p90, p99, mx, over_1s, completed = row.split()
    print(
        f"PICKUP{(' ' + args.label) if args.label else ''} gaps_ms={args.min_gap_ms:g}-{args.max_gap_ms:g} "
        f"sent={len(client_ms)} accepted={len(ids)} failures={failures} started={n} completed={completed} "
        f"not_started={waiting} send_s={send_s:.1f} "
        f"pickup_ms p50={p50} p90={p90} p99={p99} max={mx} over_1s={over_1s} | "
        f"client_request_ms p50={pct(client_ms, .5):.2f} p99={pct(client_ms, .99):.2f} max={max(client_ms):.2f}"
    )


if __name__ == "__main__":
    main()
