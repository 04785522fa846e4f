-- wrk script: POST /payments/webhook/stripe, every request a different pre-signed event
-- (scripts/bench/webhooks.sh writes them, one "<Stripe-Signature>\t<body>" line each). Each
-- wrk thread sends its own share of the lines, so no event is sent twice until they run out
-- (then they wrap, and the repeats are answered as duplicates: the script counts them).
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end

local signatures, bodies, idx = {}, {}, 0
function init(args)
  local threads = tonumber(os.getenv("WRK_THREADS") or "2")
  local n = 0
  for line in io.lines(os.getenv("WEBHOOK_EVENTS")) do
    if n % threads == tid then
      local tab = line:find("\t", 1, true)
      signatures[#signatures + 1] = line:sub(1, tab - 1)
      bodies[#bodies + 1] = line:sub(tab + 1)
    end
    n = n + 1
  end
end

function request()
  idx = idx % #bodies + 1
  return wrk.format("POST", "/payments/webhook/stripe",
    { ["Content-Type"] = "application/json", ["Stripe-Signature"] = signatures[idx] },
    bodies[idx])
end

dofile(os.getenv("BENCH_DIR") .. "/wrk_result.lua")
