-- wrk script: POST /director/assign with a valid assignment (scripts/bench/accept.sh).
-- The token comes from the environment (BENCH_TOKEN); every request is the same valid body.
wrk.method = "POST"
wrk.body = '{"organizerId":"org_demo","eventId":"ev_demo","type":"prepaid","tickets":1,"price":3.5}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_TOKEN") or "bench-token-1")

-- One machine-readable line at the end (latencies in microseconds).
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d "
      .. "non2xx=%d connect_err=%d read_err=%d write_err=%d timeout_err=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.status, e.connect, e.read, e.write, e.timeout))
end
