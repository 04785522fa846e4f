-- wrk script: POST /director/assign with a valid assignment (scripts/bench/accept.sh).
-- The token comes from the environment (BENCH_TOKEN); every request is the same valid body.
wrk.method = "POST"
wrk.body = '{"organizerId":"org_demo","eventId":"ev_demo","type":"prepaid","tickets":1,"price":3.5}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_TOKEN") or "bench-token-1")

dofile(os.getenv("BENCH_DIR") .. "/wrk_result.lua")
