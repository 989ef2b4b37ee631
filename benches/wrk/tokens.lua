-- wrk script of benches/envoy_bench.py: GET requests carrying
-- "Authorization: Bearer <token>", rotating through the tokens of a file (one
-- per line), one request each, in order. A file of one line is the warm
-- workload (one token repeated); a file of 10,000 lines the cold one.
--
-- Every response is checked: any status other than 200 is counted, and the
-- summary says how many (the benchmark then calls the run invalid).
--
--   wrk -t1 -c16 -d10s -s benches/wrk/tokens.lua http://127.0.0.1:PORT \
--       -- TOKENS_FILE RESULT_JSON [PATH]
--
-- RESULT_JSON receives: requests, duration_us, bytes, errors (connect, read,
-- write, status, timeout), responses and non_200 seen by the response hook,
-- first_bad_status, and latency (min, mean, max, stdev, p50, p90, p99, p99.9)
-- in microseconds. PATH defaults to /orders/42.
--
-- The requests are formatted once in init(), so request() only steps an index.

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("thread_id", counter)
  table.insert(threads, thread)
end

function init(args)
  local tokens_file = args[1]
  result_file = args[2]
  local path = args[3] or "/orders/42"
  if not tokens_file or not result_file then
    error("usage: wrk ... -s tokens.lua URL -- TOKENS_FILE RESULT_JSON [PATH]")
  end
  reqs = {}
  for line in io.lines(tokens_file) do
    if #line > 0 then
      reqs[#reqs + 1] = wrk.format("GET", path, { ["Authorization"] = "Bearer " .. line })
    end
  end
  n_reqs = #reqs
  if n_reqs == 0 then
    error("no tokens in " .. tokens_file)
  end
  -- Threads start at different places in the rotation.
  idx = ((thread_id or 1) - 1) * 7919 % n_reqs
  responses = 0
  non_200 = 0
  first_bad_status = 0
end

function request()
  idx = idx + 1
  if idx > n_reqs then
    idx = 1
  end
  return reqs[idx]
end

function response(status, headers, body)
  responses = responses + 1
  if status ~= 200 then
    non_200 = non_200 + 1
    if first_bad_status == 0 then
      first_bad_status = status
    end
  end
end

function done(summary, latency, requests)
  local total_responses, total_non_200, bad, out = 0, 0, 0, nil
  for _, t in ipairs(threads) do
    total_responses = total_responses + (t:get("responses") or 0)
    total_non_200 = total_non_200 + (t:get("non_200") or 0)
    local b = t:get("first_bad_status") or 0
    if bad == 0 and b ~= 0 then
      bad = b
    end
    out = out or t:get("result_file")
  end
  local e = summary.errors
  local function p(q)
    return latency:percentile(q)
  end
  local json = string.format(
    '{"requests": %d, "duration_us": %d, "bytes": %d, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
      .. '"responses": %d, "non_200": %d, "first_bad_status": %d, '
      .. '"latency_us": {"min": %d, "mean": %.1f, "max": %d, "stdev": %.1f, '
      .. '"p50": %d, "p90": %d, "p99": %d, "p99.9": %d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    total_responses, total_non_200, bad,
    latency.min, latency.mean, latency.max, latency.stdev,
    p(50), p(90), p(99), p(99.9)
  )
  if out then
    local f = assert(io.open(out, "w"))
    f:write(json)
    f:close()
  else
    io.write(json)
  end
end
