#!/usr/bin/env python3
"""Uncached latency of one director report: sequential GETs (one keep-alive connection), each
with a distinct normalized filter set so that every one misses the report cache (checked on
`x-cache`). Prints one summary line: n, misses, p50/p90/p99/max in ms.

usage: director-uncached.py BASE_URL TOKEN PATH_TEMPLATE N MAX_SECONDS
PATH_TEMPLATE contains `{i}` (0..N-1) and `{size}` / `{org}` / `{frm}`-`{to}` (30 days) /
`{yfrm}`-`{to}` (one year) helpers, e.g.
  '/director/reports/overview?pageSize={size}'   (size = 1 + i % 500, full date range)
  '/director/organizers/{org}/ledger'            (org = org_b00001 + i)
"""
import datetime
import http.client
import sys
import time
import urllib.parse


def pct(sorted_ms, p):
    if not sorted_ms:
        return float("nan")
    k = min(len(sorted_ms) - 1, max(0, int(round(p / 100.0 * len(sorted_ms) + 0.5)) - 1))
    return sorted_ms[k]


def main():
    base, token, template, n, max_s = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
    u = urllib.parse.urlparse(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    headers = {"Authorization": "Bearer " + token}
    today = datetime.date.today()
    lat, caches, statuses = [], {}, {}
    deadline = time.monotonic() + max_s
    for i in range(n):
        if time.monotonic() > deadline:
            break
        path = template.format(
            i=i,
            size=1 + i % 500,
            org="org_b%05d" % (1 + (i * 37) % 5000),
            # a distinct 30-day window per request, walking back from today
            frm=(today - datetime.timedelta(days=30 + i * 3)).isoformat(),
            to=(today - datetime.timedelta(days=i * 3)).isoformat(),
            # a distinct one-year window ending at `to`
            yfrm=(today - datetime.timedelta(days=365 + i * 3)).isoformat(),
        )
        t0 = time.perf_counter()
        conn.request("GET", path, headers=headers)
        r = conn.getresponse()
        r.read()
        lat.append((time.perf_counter() - t0) * 1000.0)
        caches[r.getheader("x-cache", "-")] = caches.get(r.getheader("x-cache", "-"), 0) + 1
        statuses[r.status] = statuses.get(r.status, 0) + 1
    s = sorted(lat)
    print(
        "n=%d status=%s x-cache=%s p50=%.1fms p90=%.1fms p99=%.1fms max=%.1fms mean=%.1fms"
        % (len(s), statuses, caches, pct(s, 50), pct(s, 90), pct(s, 99), s[-1] if s else float("nan"),
           sum(s) / len(s) if s else float("nan"))
    )


if __name__ == "__main__":
    main()
