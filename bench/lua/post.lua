-- wrk script for bench/run.py: POSTs a chat completion and prints one JSON summary line.
-- Settings come from the environment:
--   BENCH_PATH     request path (default /v1/chat/completions)
--   BENCH_MODEL    model name in the body
--   BENCH_STREAM   "0" (plain), "1" (stream) or "mixed" (alternate both)
--   BENCH_HEADERS  extra headers, one "Name: value" per line

local path = os.getenv("BENCH_PATH") or "/v1/chat/completions"
local model = os.getenv("BENCH_MODEL") or "gpt-4o-mini"
local mode = os.getenv("BENCH_STREAM") or "0"
local extra = os.getenv("BENCH_HEADERS") or ""

wrk.method = "POST"
wrk.path = path
wrk.headers["Content-Type"] = "application/json"
for line in string.gmatch(extra, "[^\n]+") do
  local name, value = string.match(line, "^%s*([^:]+):%s*(.-)%s*$")
  if name then
    wrk.headers[name] = value
  end
end

local function body(stream)
  return '{"model":"' .. model .. '","messages":[{"role":"user","content":"Say hello."}],'
    .. '"max_tokens":32,"stream":' .. (stream and "true" or "false") .. '}'
end

if mode == "mixed" then
  -- Built on first use: wrk.host (for the Host header) is not known while the script loads.
  local reqs = nil
  local n = 0
  request = function()
    if reqs == nil then
      reqs = {wrk.format("POST", path, nil, body(false)), wrk.format("POST", path, nil, body(true))}
    end
    n = n + 1
    return reqs[n % 2 + 1]
  end
else
  wrk.body = body(mode == "1")
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
